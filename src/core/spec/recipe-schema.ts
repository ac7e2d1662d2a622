import { z } from 'zod';

/**
 * The bundle recipe, v1. One zod schema validates recipe files at the boundary and
 * generates the JSON Schema that editors use (`apertus schema`).
 */
export const RECIPE_API_VERSION = 'apertus.dev/v1';
export const RECIPE_KIND = 'Bundle';

const name = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'use lowercase letters, digits and dashes (max 63)');

const source = z
  .string()
  .regex(
    /^(file:.+|hf:[^/@\s]+\/[^/@\s]+(@\S+)?|oci:\S+)$/,
    'a source is "file:PATH" (relative to the recipe directory), "hf:ORG/NAME[@REVISION]" or "oci:REGISTRY/NAME:TAG"',
  )
  .describe(
    'Where the component comes from: file:PATH (relative to the recipe directory), hf:ORG/NAME[@REVISION], or oci:REGISTRY/NAME[:TAG|@sha256:DIGEST] for kind image',
  );

const globs = z.array(z.string().min(1)).min(1);

const component = z
  .object({
    name,
    kind: z
      .enum(['model', 'files', 'image'])
      .describe(
        'model: weights and tokenizer files; files: configs and documents; image: a container image (oci:)',
      ),
    source,
    include: globs.optional().describe('hf: only files matching one of these globs (e.g. "*.safetensors")'),
    exclude: globs.optional().describe('hf: leave out files matching one of these globs'),
    platform: z
      .string()
      .regex(/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/, 'write OS/ARCH, e.g. linux/amd64')
      .optional()
      .describe('oci: the platform to take from a multi-platform image (default linux/amd64)'),
    insecure: z
      .boolean()
      .optional()
      .describe('oci: plain HTTP to the registry (a registry on 127.0.0.1 only)'),
    license: z
      .string()
      .min(1)
      .optional()
      .describe('SPDX licence id, recorded as provenance (hf: read from the model card when left out)'),
  })
  .strict()
  .refine((c) => c.source.startsWith('hf:') || (c.include === undefined && c.exclude === undefined), {
    message: 'include/exclude select files of an hf: source; point a file: source at the files instead',
    path: ['include'],
  })
  .refine((c) => (c.kind === 'image') === c.source.startsWith('oci:'), {
    message:
      'a component of kind image takes an oci: source, and an oci: source makes a component of kind image',
    path: ['kind'],
  })
  .refine((c) => c.source.startsWith('oci:') || (c.platform === undefined && c.insecure === undefined), {
    message: 'platform and insecure apply to oci: sources only',
    path: ['platform'],
  });

const llamacppService = z
  .object({
    name,
    runtime: z.literal('llamacpp').describe('the CPU runtime: our OpenAI-compatible server over llama.cpp'),
    model: z
      .string()
      .regex(/^[a-z0-9-]+\/.+/, 'write COMPONENT/PATH, e.g. model/tiny-llama.gguf')
      .describe('COMPONENT/PATH of the GGUF file the service serves'),
    modelId: z.string().min(1).describe('the id clients use in the OpenAI API'),
    port: z.number().int().min(1024).max(65535),
    threads: z
      .number()
      .int()
      .min(1)
      .max(256)
      .describe('inference threads; set it to the cores you give the service, never more'),
    contextSize: z.number().int().min(64).default(2048),
    embeddings: z.boolean().default(false).describe('also serve /v1/embeddings'),
  })
  .strict();

const verify = z
  .object({
    chat: z
      .object({ prompt: z.string().min(1), maxTokens: z.number().int().min(1).max(4096).default(16) })
      .strict()
      .default({ prompt: 'Say hello.', maxTokens: 16 }),
    embeddings: z
      .object({ input: z.string().min(1), dimension: z.number().int().min(1) })
      .strict()
      .nullable()
      .default(null),
  })
  .strict();

export const recipeSchema = z
  .object({
    apiVersion: z.literal(RECIPE_API_VERSION),
    kind: z.literal(RECIPE_KIND),
    metadata: z
      .object({
        name,
        version: z.string().regex(/^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/, 'use a version such as 0.1.0'),
        description: z.string().default(''),
      })
      .strict(),
    components: z.array(component).min(1),
    services: z.array(llamacppService).default([]),
    verify: verify.default({ chat: { prompt: 'Say hello.', maxTokens: 16 }, embeddings: null }),
  })
  .strict()
  .superRefine((recipe, ctx) => {
    const components = new Set<string>();
    recipe.components.forEach((c, i) => {
      if (c.name === 'runtime') {
        ctx.addIssue({
          code: 'custom',
          path: ['components', i, 'name'],
          message: '"runtime" is reserved: apertus adds the runtime component itself',
        });
      }
      if (components.has(c.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['components', i, 'name'],
          message: `duplicate component "${c.name}"`,
        });
      }
      components.add(c.name);
    });
    const ports = new Map<number, string>();
    recipe.services.forEach((s, i) => {
      const component = s.model.split('/')[0] ?? '';
      if (!components.has(component)) {
        ctx.addIssue({
          code: 'custom',
          path: ['services', i, 'model'],
          message: `no component named "${component}" (components: ${[...components].join(', ')})`,
        });
      }
      const other = ports.get(s.port);
      if (other !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['services', i, 'port'],
          message: `port ${s.port} is already used by service "${other}"`,
        });
      }
      ports.set(s.port, s.name);
    });
    if (recipe.verify.embeddings && !recipe.services.some((s) => s.embeddings)) {
      ctx.addIssue({
        code: 'custom',
        path: ['verify', 'embeddings'],
        message: 'embeddings are verified but no service sets "embeddings: true"',
      });
    }
  });

export type Recipe = z.infer<typeof recipeSchema>;
export type RecipeComponent = Recipe['components'][number];
export type RecipeService = Recipe['services'][number];

export function recipeJsonSchema(): Record<string, unknown> {
  return {
    $id: 'https://apertus.dev/schema/bundle-recipe.v1.json',
    title: 'apertus bundle recipe (apertus.dev/v1, kind Bundle)',
    ...z.toJSONSchema(recipeSchema, { io: 'input', unrepresentable: 'any' }),
  };
}
