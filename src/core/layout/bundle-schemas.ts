/**
 * zod schemas for the JSON documents of a bundle: index.json, manifests and the
 * bundle config. Each is typed against src/core/layout/types.ts, so the two cannot
 * drift apart without the type check failing.
 */
import { z } from 'zod';
import { MEDIA_TYPE } from './media-types.js';
import type { BundleConfig, ComponentKind, Descriptor, ServiceSpec, VerifySpec } from './types.js';

const digest = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected "sha256:" and 64 lowercase hex digits');
const size = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const descriptorSchema: z.ZodType<Descriptor> = z.object({
  mediaType: z.string().min(1),
  digest,
  size,
  artifactType: z.string().min(1).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

export const ociIndexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.literal(MEDIA_TYPE.ociIndex).optional(),
  manifests: z.array(descriptorSchema),
});
export type OciIndex = z.infer<typeof ociIndexSchema>;

export const ociManifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.literal(MEDIA_TYPE.ociManifest),
  artifactType: z.string().min(1).optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type OciManifest = z.infer<typeof ociManifestSchema>;

/**
 * An image component's manifest is the image's own, OCI or Docker schema 2, as pulled
 * (an OCI manifest need not name its media type: its descriptor does).
 */
export const imageComponentManifestSchema = ociManifestSchema.extend({
  mediaType: z.enum([MEDIA_TYPE.ociManifest, MEDIA_TYPE.dockerManifest]).optional(),
});

export const componentKindSchema: z.ZodType<ComponentKind> = z.enum([
  'model',
  'runtime',
  'files',
  'image',
  'wheels',
]);

const port = z.number().int().min(1).max(65535);
const positive = z.number().int().min(1);

const llamacppServiceSchema = z.object({
  name: z.string().min(1),
  runtime: z.literal('llamacpp'),
  model: z.object({ component: z.string().min(1), path: z.string().min(1), id: z.string().min(1) }),
  port,
  threads: positive,
  contextSize: positive,
  embeddings: z.boolean(),
});

const ragServiceSchema = z.object({
  name: z.string().min(1),
  runtime: z.literal('rag'),
  port,
  runtimeUrl: z.string().url(),
  embeddingsUrl: z.string().url().optional(),
  embeddingModel: z.string().min(1),
  dimension: positive,
  chatModel: z.string().min(1),
  dependsOn: z.array(z.string().min(1)).optional(),
  chunkSize: positive.optional(),
  chunkOverlap: z.number().int().min(0).optional(),
  topK: positive.optional(),
  maxContextChars: positive.optional(),
  queryPrefix: z.string().optional(),
  passagePrefix: z.string().optional(),
  qdrant: z.object({ url: z.string().url(), collection: z.string().min(1) }).optional(),
});

const serviceImageSchema = z.object({ component: z.string().min(1), reference: z.string().min(1) });
const bindSchema = z.enum(['127.0.0.1', '0.0.0.0']);
const launchSource = z.enum(['recipe', 'fit', 'default']);

const vllmServiceSchema = z.object({
  name: z.string().min(1),
  runtime: z.literal('vllm'),
  image: serviceImageSchema,
  model: z.object({ component: z.string().min(1), path: z.string(), id: z.string().min(1) }),
  port,
  bind: bindSchema,
  embeddings: z.boolean(),
  dtype: z.enum(['auto', 'half', 'bfloat16', 'float16']),
  maxModelLen: positive.optional(),
  tensorParallelSize: positive.optional(),
  gpuMemoryUtilization: z.number().gt(0).max(1).optional(),
  extraArgs: z.array(z.string()),
  alternativeImages: z.array(serviceImageSchema).optional(),
  chosen: z
    .object({
      tensorParallelSize: launchSource,
      maxModelLen: launchSource,
      gpuMemoryUtilization: launchSource,
      image: z.enum(['recipe', 'driver']),
      detail: z.string(),
    })
    .optional(),
});

const containerServiceSchema = z.object({
  name: z.string().min(1),
  runtime: z.literal('container'),
  image: serviceImageSchema,
  port,
  containerPort: port,
  bind: bindSchema,
  args: z.array(z.string()),
  env: z.record(z.string(), z.string()),
  modelComponent: z.string().min(1).optional(),
  dataDir: z.string().min(1).optional(),
  healthPath: z.string().min(1),
  openai: z.object({ modelId: z.string().min(1), embeddings: z.boolean() }).optional(),
});

const serviceSpecSchema: z.ZodType<ServiceSpec> = z.discriminatedUnion('runtime', [
  llamacppServiceSchema,
  ragServiceSchema,
  vllmServiceSchema,
  containerServiceSchema,
]);

const verifySpecSchema: z.ZodType<VerifySpec> = z.object({
  chat: z.object({ prompt: z.string(), maxTokens: z.number().int().min(1) }),
  embeddings: z.object({ input: z.string(), dimension: z.number().int().min(1) }).nullable(),
  golden: z
    .array(
      z.object({
        name: z.string().min(1),
        service: z.string().min(1),
        prompt: z.string().min(1),
        maxTokens: positive,
        temperature: z.number().min(0),
        expect: z.string().min(1),
      }),
    )
    .optional(),
});

/** The newest bundle format this build reads; older ones stay readable. */
export const CURRENT_FORMAT_VERSION = 1;

export const bundleConfigSchema: z.ZodType<BundleConfig> = z.object({
  formatVersion: z.literal(1),
  name: z.string().min(1),
  version: z.string().min(1),
  description: z.string(),
  recipe: z.object({ digest, path: z.string().min(1) }),
  components: z.array(
    z.object({
      name: z.string().min(1),
      kind: componentKindSchema,
      manifest: descriptorSchema,
      provenance: z.object({
        source: z.string(),
        revision: z.string().optional(),
        license: z.string().optional(),
        url: z.string().optional(),
        platform: z.string().optional(),
        index: z.string().optional(),
        python: z.string().optional(),
        platforms: z.array(z.string()).optional(),
      }),
    }),
  ),
  services: z.array(serviceSpecSchema),
  verify: verifySpecSchema,
  requirements: z.object({
    diskBytes: size,
    minVramBytes: size.optional(),
    computeCapability: z.string().optional(),
    driver: z.string().optional(),
  }),
  delta: z
    .object({
      base: z
        .object({ name: z.string().min(1), version: z.string().min(1), manifestDigest: digest })
        .nullable(),
      omitted: z.array(z.object({ digest, size })),
    })
    .optional(),
});

/** zod issues as one line: "components.0.kind: Invalid option ...; layers: ...". */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length === 0 ? '(root)' : issue.path.join('.')}: ${issue.message}`)
    .join('; ');
}
