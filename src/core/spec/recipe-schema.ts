import { z } from 'zod';
import { containerRecipeService, vllmRecipeService } from '../runtimes/container/recipe-schema.js';

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
    /^(file:.+|hf:[^/@\s]+\/[^/@\s]+(@\S+)?|oci:\S+|pip:.+)$/,
    'a source is "file:PATH" (relative to the recipe directory), "hf:ORG/NAME[@REVISION]", "oci:REGISTRY/NAME:TAG" or "pip:REQUIREMENTS"',
  )
  .describe(
    'Where the component comes from: file:PATH (relative to the recipe directory), hf:ORG/NAME[@REVISION], oci:REGISTRY/NAME[:TAG|@sha256:DIGEST] for kind image, or pip:REQUIREMENTS (a requirements file relative to the recipe directory) for kind wheels',
  );

const globs = z.array(z.string().min(1)).min(1);

/** Fields of pip: sources (kind wheels); see src/core/sources/pip. */
const pipFields = {
  python: z
    .string()
    .regex(/^3\.[0-9]{1,2}$/, 'write the target Python as MAJOR.MINOR, e.g. "3.11"')
    .optional()
    .describe('pip: the Python version of the target host, MAJOR.MINOR (default "3.11")'),
  platforms: z
    .array(z.string().regex(/^[a-z0-9_]+$/, 'a wheel platform tag, e.g. manylinux2014_x86_64'))
    .min(1)
    .optional()
    .describe(
      'pip: wheel platform tags of the target host (default manylinux2014_x86_64, manylinux_2_17_x86_64, manylinux_2_28_x86_64)',
    ),
  indexUrl: z
    .url({ protocol: /^https?$/ })
    .refine((u) => !/^[a-z]+:\/\/[^/]*@/i.test(u), {
      message: 'the recipe is stored in the bundle: put credentials in PIP_INDEX_URL, not in indexUrl',
    })
    .optional()
    .describe(
      'pip: the "simple" index to resolve from (default PIP_INDEX_URL, else https://pypi.org/simple/)',
    ),
};

const component = z
  .object({
    name,
    kind: z
      .enum(['model', 'files', 'image', 'wheels'])
      .describe(
        'model: weights and tokenizer files; files: configs and documents; image: a container image (oci:); wheels: a Python wheelhouse installed into a venv on the host (pip:)',
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
    ...pipFields,
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
  })
  .refine((c) => (c.kind === 'wheels') === c.source.startsWith('pip:'), {
    message:
      'a component of kind wheels takes a pip: source, and a pip: source makes a component of kind wheels',
    path: ['kind'],
  })
  .refine(
    (c) =>
      c.source.startsWith('pip:') ||
      (c.python === undefined && c.platforms === undefined && c.indexUrl === undefined),
    { message: 'python, platforms and indexUrl apply to pip: sources only', path: ['python'] },
  );

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

const ragService = z
  .object({
    name,
    runtime: z
      .literal('rag')
      .describe('our RAG service: ingest, retrieve, answer with sources, audit every request'),
    port: z.number().int().min(1024).max(65535),
    chat: name.describe('the model service it answers through (its chat model)'),
    embeddings: name
      .optional()
      .describe(
        'the model service it embeds through (default: the chat service, which must serve embeddings)',
      ),
    dimension: z
      .number()
      .int()
      .min(1)
      .max(65536)
      .describe("the embedding model's dimension; the collection on the host is locked to it"),
    chunkSize: z.number().int().min(50).optional().describe('characters per chunk (default 800)'),
    chunkOverlap: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe('characters shared by neighbouring chunks (default 120)'),
    topK: z.number().int().min(1).max(100).optional().describe('passages retrieved per question (default 4)'),
    maxContextChars: z
      .number()
      .int()
      .min(100)
      .optional()
      .describe('characters of retrieved passages sent to the model at most (default 4000)'),
    queryPrefix: z
      .string()
      .optional()
      .describe('put before questions before embedding (e5 models: "query: ")'),
    passagePrefix: z
      .string()
      .optional()
      .describe('put before passages before embedding (e5 models: "passage: ")'),
    qdrant: z
      .object({
        service: name.describe('the container service running Qdrant'),
        collection: z
          .string()
          .regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, _ and -')
          .default('apertus')
          .describe('the Qdrant collection'),
      })
      .strict()
      .optional()
      .describe('keep the vectors in Qdrant instead of the embedded store (for large collections)'),
  })
  .strict();

const service = z.discriminatedUnion('runtime', [
  llamacppService,
  ragService,
  vllmRecipeService,
  containerRecipeService,
]);

const goldenPrompt = z
  .object({
    name,
    service: name.optional().describe('the service asked (default: the first model service)'),
    prompt: z.string().min(1),
    maxTokens: z.number().int().min(1).max(4096).default(32),
    temperature: z.number().min(0).max(2).default(0),
    expect: z
      .string()
      .min(1)
      .refine((pattern) => {
        try {
          new RegExp(pattern, 'u');
          return true;
        } catch {
          return false;
        }
      }, 'not a valid regular expression')
      .describe('a regular expression (JavaScript, unicode) the answer must match'),
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
    golden: z
      .array(goldenPrompt)
      .default([])
      .describe('the evaluation suite: prompts whose answers must match a pattern after install'),
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
    services: z.array(service).default([]),
    verify: verify.default({ chat: { prompt: 'Say hello.', maxTokens: 16 }, embeddings: null, golden: [] }),
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
      if (c.name === 'venvs') {
        ctx.addIssue({
          code: 'custom',
          path: ['components', i, 'name'],
          message: '"venvs" is reserved: the host keeps the venvs of wheels components there',
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
    const services = new Map(recipe.services.map((s) => [s.name, s]));
    recipe.services.forEach((s, i) => {
      const other = ports.get(s.port);
      if (other !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['services', i, 'port'],
          message: `port ${s.port} is already used by service "${other}"`,
        });
      }
      ports.set(s.port, s.name);
      if (s.runtime === 'vllm' || s.runtime === 'container') {
        const kindOf = (component: string) => recipe.components.find((c) => c.name === component)?.kind;
        if (kindOf(s.image) !== 'image') {
          ctx.addIssue({
            code: 'custom',
            path: ['services', i, 'image'],
            message: `no image component named "${s.image}" (components: ${[...components].join(', ')})`,
          });
        }
        (s.runtime === 'vllm' ? s.alternativeImages : []).forEach((image, j) => {
          if (kindOf(image) !== 'image') {
            ctx.addIssue({
              code: 'custom',
              path: ['services', i, 'alternativeImages', j],
              message: `no image component named "${image}" (components: ${[...components].join(', ')})`,
            });
          }
        });
        if (
          s.model !== undefined &&
          (s.runtime === 'vllm' ? kindOf(s.model) !== 'model' : !components.has(s.model))
        ) {
          ctx.addIssue({
            code: 'custom',
            path: ['services', i, 'model'],
            message: `no ${s.runtime === 'vllm' ? 'model ' : ''}component named "${s.model}" (components: ${[...components].join(', ')})`,
          });
        }
        return;
      }
      if (s.runtime === 'llamacpp') {
        const component = s.model.split('/')[0] ?? '';
        if (!components.has(component)) {
          ctx.addIssue({
            code: 'custom',
            path: ['services', i, 'model'],
            message: `no component named "${component}" (components: ${[...components].join(', ')})`,
          });
        }
        return;
      }
      for (const field of ['chat', 'embeddings'] as const) {
        const wanted = s[field];
        if (wanted === undefined) continue;
        const target = services.get(wanted);
        if (!target || target.runtime === 'rag' || target.runtime === 'container') {
          ctx.addIssue({
            code: 'custom',
            path: ['services', i, field],
            message: `no model service named "${wanted}" (model services: ${modelServiceNames(recipe.services)})`,
          });
        }
      }
      if (s.qdrant && services.get(s.qdrant.service)?.runtime !== 'container') {
        ctx.addIssue({
          code: 'custom',
          path: ['services', i, 'qdrant', 'service'],
          message: `no container service named "${s.qdrant.service}" to keep the vectors in`,
        });
      }
      const embedder = services.get(s.embeddings ?? s.chat);
      if ((embedder?.runtime === 'llamacpp' || embedder?.runtime === 'vllm') && !embedder.embeddings) {
        ctx.addIssue({
          code: 'custom',
          path: ['services', i, s.embeddings ? 'embeddings' : 'chat'],
          message: `service "${embedder.name}" does not serve embeddings: set "embeddings: true" on it`,
        });
      }
    });
    if (
      recipe.verify.embeddings &&
      !recipe.services.some((s) => (s.runtime === 'llamacpp' || s.runtime === 'vllm') && s.embeddings)
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['verify', 'embeddings'],
        message: 'embeddings are verified but no service sets "embeddings: true"',
      });
    }
    recipe.verify.golden.forEach((g, i) => {
      if (g.service !== undefined && !services.has(g.service)) {
        ctx.addIssue({
          code: 'custom',
          path: ['verify', 'golden', i, 'service'],
          message: `no service named "${g.service}" (services: ${[...services.keys()].join(', ')})`,
        });
      }
    });
  });

export type Recipe = z.infer<typeof recipeSchema>;
export type RecipeComponent = Recipe['components'][number];
export type RecipeService = Recipe['services'][number];

function modelServiceNames(services: RecipeService[]): string {
  return (
    services
      .filter((s) => s.runtime !== 'rag' && s.runtime !== 'container')
      .map((s) => s.name)
      .join(', ') || 'none'
  );
}

export function recipeJsonSchema(): Record<string, unknown> {
  return {
    $id: 'https://apertus.dev/schema/bundle-recipe.v1.json',
    title: 'apertus bundle recipe (apertus.dev/v1, kind Bundle)',
    ...z.toJSONSchema(recipeSchema, { io: 'input', unrepresentable: 'any' }),
  };
}
