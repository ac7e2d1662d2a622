import { z } from 'zod';

/**
 * Recipe services that run as containers (src/core/runtimes/container/engine.ts): a vLLM
 * instance (src/core/runtimes/vllm/vllm.ts) or any image the bundle carries (Qdrant, say).
 * Part of the recipe schema (recipe-schema.ts), kept here with what it describes.
 */
const serviceName = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'use lowercase letters, digits and dashes (max 63)');

const componentName = serviceName.describe('the name of a component of this recipe');

const bind = z
  .enum(['127.0.0.1', '0.0.0.0'])
  .default('127.0.0.1')
  .describe('where the host port listens: loopback (default) or every interface');

const port = z.number().int().min(1024).max(65535);

export const vllmRecipeService = z
  .object({
    name: serviceName,
    runtime: z.literal('vllm').describe('the GPU runtime: the vllm/vllm-openai image of an image component'),
    image: componentName.describe('the image component holding vllm/vllm-openai'),
    alternativeImages: z
      .array(componentName)
      .default([])
      .describe(
        'more image components holding vllm/vllm-openai for other CUDA versions (a -cu129 tag, say): install runs the newest one whose CUDA the host driver supports',
      ),
    model: componentName.describe('the model component (a Hugging Face model directory), served by path'),
    modelId: z.string().min(1).describe('--served-model-name: the id clients use in the OpenAI API'),
    port,
    bind,
    maxModelLen: z
      .number()
      .int()
      .min(64)
      .optional()
      .describe('--max-model-len; default: the longest context the fit plan finds for the host'),
    tensorParallelSize: z
      .number()
      .int()
      .min(1)
      .max(64)
      .optional()
      .describe('--tensor-parallel-size; default: the smallest the fit plan finds for the host'),
    gpuMemoryUtilization: z
      .number()
      .min(0.05)
      .max(1)
      .optional()
      .describe('--gpu-memory-utilization: the fraction of each GPU this instance may use (per instance)'),
    dtype: z
      .enum(['auto', 'half', 'bfloat16', 'float16'])
      .default('auto')
      .describe('--dtype; half below compute capability 8.0'),
    embeddings: z
      .boolean()
      .default(false)
      .describe('serve /v1/embeddings with a pooling model instead of chat'),
    extraArgs: z.array(z.string()).default([]).describe('more vLLM flags, after the ones apertus sets'),
  })
  .strict();

export const containerRecipeService = z
  .object({
    name: serviceName,
    runtime: z.literal('container').describe('any image component, run with podman or docker'),
    image: componentName.describe('the image component to run'),
    port: port.describe('the port on the host'),
    containerPort: z.number().int().min(1).max(65535).describe('the port the image listens on inside'),
    bind,
    args: z.array(z.string()).default([]).describe("arguments after the image's entrypoint"),
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).default({}),
    model: componentName.optional().describe('a component mounted read-only at /models/<component>'),
    dataDir: z
      .string()
      .regex(/^\/[^,:]*$/, 'an absolute path inside the container')
      .optional()
      .describe(
        'a path inside the container backed by a writable directory on the host that outlives releases',
      ),
    healthPath: z
      .string()
      .regex(/^\//)
      .default('/')
      .describe('HTTP path that answers 200 once the service is up'),
    openai: z
      .object({
        modelId: z.string().min(1).describe('the model id the image serves in /v1/models'),
        embeddings: z.boolean().default(false).describe('it also serves /v1/embeddings'),
      })
      .strict()
      .optional()
      .describe(
        'the image serves the OpenAI API: install verifies it like a model server (model listed, chat, embeddings)',
      ),
  })
  .strict();

export type VllmRecipeService = z.infer<typeof vllmRecipeService>;
export type ContainerRecipeService = z.infer<typeof containerRecipeService>;
