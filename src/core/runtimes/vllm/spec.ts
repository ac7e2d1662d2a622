/**
 * The vllm service in a recipe and in a bundle: a model component served by the
 * vllm/vllm-openai image of an image component, with the flags the recipe sets (the rest
 * come from the fit plan of the host install runs on).
 */
import { z } from 'zod';
import {
  argument,
  bind,
  dtype,
  hostPort,
  LIMITS,
  modelId,
  oneLineText,
  resourceName,
} from '../../spec/safe-values.js';
import type { KindSchema } from '../adapter.js';
import { type ServiceImage, serviceImageSchema } from '../container/service-image.js';

/** A vLLM instance in a container (src/core/runtimes/vllm/vllm.ts); flags the recipe leaves out come from the fit plan. */
export interface VllmServiceSpec {
  name: string;
  runtime: 'vllm';
  image: ServiceImage;
  /** The model component is the directory served; `path` is '' (the component's root). */
  model: { component: string; path: string; id: string };
  port: number;
  bind: '127.0.0.1' | '0.0.0.0';
  embeddings: boolean;
  dtype: 'auto' | 'half' | 'bfloat16' | 'float16';
  maxModelLen?: number;
  tensorParallelSize?: number;
  gpuMemoryUtilization?: number;
  extraArgs: string[];
  /**
   * Run the Python code the model ships (config.json `auto_map`): `--trust-remote-code`.
   * Absent: the recipe did not say, which offline readiness refuses for a model with auto_map.
   */
  trustRemoteCode?: boolean;
  /** More vLLM images for other CUDA versions; install runs the one the host driver supports. */
  alternativeImages?: ServiceImage[];
  /** LoRA adapters (PEFT directories) served over the model, each under its own id; absent: none. */
  adapters?: VllmAdapter[];
  /** Set by install: what it chose for this host and why (src/core/runtimes/vllm/launch.ts). */
  chosen?: VllmChoice;
}

/** A PEFT LoRA adapter component (adapter_config.json + weights), served by vLLM under `id`. */
export interface VllmAdapter {
  component: string;
  id: string;
  /** Its rank (adapter_config.json `r`), read once the bundle's files are fetched; it sizes --max-lora-rank. */
  rank?: number;
}

/** A model id vLLM's `--lora-modules NAME=PATH` can take: NAME is split off at the '='. */
const loraModuleName = modelId.regex(/^[^=]*$/, 'an adapter served by vLLM has an id without "="');

/** Where each launch setting of a vLLM service came from, on the host it was installed on. */
export interface VllmChoice {
  tensorParallelSize: 'recipe' | 'fit' | 'default';
  maxModelLen: 'recipe' | 'fit' | 'default';
  gpuMemoryUtilization: 'recipe' | 'fit' | 'default';
  /** 'driver': picked among the service's images by the host's NVIDIA driver. */
  image: 'recipe' | 'driver';
  /** One line: the GPUs and driver it was judged against, or why there was no fit. */
  detail: string;
}

const componentName = resourceName.describe('the name of a component of this recipe');

export const vllmRecipeService = z
  .object({
    name: resourceName,
    runtime: z.literal('vllm').describe('the GPU runtime: the vllm/vllm-openai image of an image component'),
    image: componentName.describe('the image component holding vllm/vllm-openai'),
    alternativeImages: z
      .array(componentName)
      .default([])
      .describe(
        'more image components holding vllm/vllm-openai for other CUDA versions (a -cu129 tag, say): install runs the newest one whose CUDA the host driver supports',
      ),
    model: componentName.describe('the model component (a Hugging Face model directory), served by path'),
    modelId: modelId.describe('--served-model-name: the id clients use in the OpenAI API'),
    port: hostPort,
    bind: bind
      .default('127.0.0.1')
      .describe('where the host port listens: loopback (default) or every interface'),
    maxModelLen: LIMITS.maxModelLen
      .optional()
      .describe('--max-model-len; default: the longest context the fit plan finds for the host'),
    tensorParallelSize: LIMITS.tensorParallelSize
      .optional()
      .describe('--tensor-parallel-size; default: the smallest the fit plan finds for the host'),
    gpuMemoryUtilization: LIMITS.gpuMemoryUtilization
      .optional()
      .describe('--gpu-memory-utilization: the fraction of each GPU this instance may use (per instance)'),
    dtype: dtype.default('auto').describe('--dtype; half below compute capability 8.0'),
    embeddings: z
      .boolean()
      .default(false)
      .describe('serve /v1/embeddings with a pooling model instead of chat'),
    extraArgs: z.array(argument).default([]).describe('more vLLM flags, after the ones apertus sets'),
    trustRemoteCode: z
      .boolean()
      .optional()
      .describe(
        '--trust-remote-code: run the Python modules the model ships (config.json auto_map); must be said, true or false, for such a model, and with true its .py files must be bundled',
      ),
    adapters: z
      .array(
        z
          .object({
            adapter: componentName.describe(
              'a component of kind adapter (a PEFT directory: adapter_config.json and its weights) bound to the model served',
            ),
            modelId: loraModuleName.describe('the id clients use for the model with this adapter applied'),
          })
          .strict(),
      )
      .default([])
      .describe(
        'LoRA adapters served over the model, each under its own model id (--enable-lora, --lora-modules)',
      ),
  })
  .strict();

export type VllmRecipeService = z.output<typeof vllmRecipeService>;

const launchSource = z.enum(['recipe', 'fit', 'default']);

export const vllmServiceSchema = z.object({
  name: resourceName,
  runtime: z.literal('vllm'),
  image: serviceImageSchema,
  // The component's root is what vLLM serves: no path inside it.
  model: z.object({ component: resourceName, path: z.literal(''), id: modelId }),
  port: hostPort,
  bind,
  embeddings: z.boolean(),
  dtype,
  maxModelLen: LIMITS.maxModelLen.optional(),
  tensorParallelSize: LIMITS.tensorParallelSize.optional(),
  gpuMemoryUtilization: LIMITS.gpuMemoryUtilization.optional(),
  extraArgs: z.array(argument),
  trustRemoteCode: z.boolean().optional(),
  alternativeImages: z.array(serviceImageSchema).optional(),
  adapters: z
    .array(z.object({ component: resourceName, id: loraModuleName, rank: LIMITS.loraRank }))
    .optional(),
  chosen: z
    .object({
      tensorParallelSize: launchSource,
      maxModelLen: launchSource,
      gpuMemoryUtilization: launchSource,
      image: z.enum(['recipe', 'driver']),
      detail: oneLineText(),
    })
    .optional(),
}) satisfies KindSchema<VllmServiceSpec>;
