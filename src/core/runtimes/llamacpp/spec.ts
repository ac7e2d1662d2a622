/**
 * The llamacpp service in a recipe and in a bundle: a GGUF file of a component, served on
 * CPU by our OpenAI-compatible server over node-llama-cpp.
 */
import { z } from 'zod';
import {
  componentPath,
  hostPort,
  isComponentPath,
  LIMITS,
  modelId,
  resourceName,
} from '../../spec/safe-values.js';
import type { KindSchema } from '../adapter.js';

/** A model server on CPU: our OpenAI-compatible server over node-llama-cpp. */
export interface LlamacppServiceSpec {
  name: string;
  runtime: 'llamacpp';
  /** Component holding the model, and the model file's path inside it. */
  model: { component: string; path: string; id: string };
  port: number;
  threads: number;
  contextSize: number;
  embeddings: boolean;
  /** GGUF LoRA adapters of the model, each served under its own id; absent in bundles before adapters. */
  adapters?: LlamacppAdapter[];
}

/** A GGUF LoRA file of an adapter component, served over the base model under `id`. */
export interface LlamacppAdapter {
  component: string;
  path: string;
  id: string;
}

const componentFilePath = (example: string) =>
  z
    .string()
    .regex(/^[a-z0-9-]+\/.+/, `write COMPONENT/PATH, e.g. ${example}`)
    .refine((value) => isComponentPath(value.slice(value.indexOf('/') + 1)), {
      message: 'PATH is a relative path inside the component: no leading "/", no "." or ".." parts',
    });

export const llamacppRecipeService = z
  .object({
    name: resourceName,
    runtime: z.literal('llamacpp').describe('the CPU runtime: our OpenAI-compatible server over llama.cpp'),
    model: componentFilePath('model/tiny-llama.gguf').describe(
      'COMPONENT/PATH of the GGUF file the service serves',
    ),
    modelId: modelId.describe('the id clients use in the OpenAI API'),
    port: hostPort,
    threads: LIMITS.threads.describe(
      'inference threads; set it to the cores you give the service, never more',
    ),
    contextSize: LIMITS.contextSize.default(2048),
    embeddings: z.boolean().default(false).describe('also serve /v1/embeddings'),
    adapters: z
      .array(
        z
          .object({
            adapter: componentFilePath('tiny-lora/tiny-lora.gguf').describe(
              'COMPONENT/PATH of a GGUF LoRA file, in a component of kind adapter bound to the model served',
            ),
            modelId: modelId.describe('the id clients use for the model with this adapter applied'),
          })
          .strict(),
      )
      .default([])
      .describe('LoRA adapters served over the model, each under its own model id'),
  })
  .strict();

export type LlamacppRecipeService = z.output<typeof llamacppRecipeService>;

export const llamacppServiceSchema = z.object({
  name: resourceName,
  runtime: z.literal('llamacpp'),
  model: z.object({ component: resourceName, path: componentPath, id: modelId }),
  port: hostPort,
  threads: LIMITS.threads,
  contextSize: LIMITS.contextSize,
  embeddings: z.boolean(),
  adapters: z.array(z.object({ component: resourceName, path: componentPath, id: modelId })).optional(),
}) satisfies KindSchema<LlamacppServiceSpec>;

/** 'model/tiny-llama.gguf' -> the component and the path inside it. */
export function splitModelPath(model: string): { component: string; path: string } {
  const [component = '', ...rest] = model.split('/');
  return { component, path: rest.join('/') };
}
