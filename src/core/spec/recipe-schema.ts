import { z } from 'zod';
import { evalThresholdsSchema } from '../eval/eval-set.js';
import type { RecipeView } from '../runtimes/adapter.js';
import { recipeAdapterOf, recipeServiceSchema } from '../runtimes/registry.js';
import {
  answerPattern,
  LIMITS,
  oneLineText,
  promptText,
  repeatedKeys,
  resourceName,
  uniquenessIssues,
  versionString,
} from './safe-values.js';

/**
 * The bundle recipe, v1. One zod schema validates recipe files at the boundary and
 * generates the JSON Schema that editors use (`apertus schema`). Each service kind brings
 * its own entry (src/core/runtimes/registry.ts); values that reach a host follow the rules
 * of safe-values.ts, the same the bundle is loaded with.
 */
export const RECIPE_API_VERSION = 'apertus.dev/v1';
export const RECIPE_KIND = 'Bundle';

const name = resourceName;

/** Component names apertus gives meanings of its own, and why. */
const RESERVED_COMPONENTS: Readonly<Record<string, string>> = {
  runtime: 'apertus adds the runtime component itself',
  venvs: 'the host keeps the venvs of wheels components there',
};

const source = z
  .string()
  .regex(
    /^(file:.+|hf:[^/@\s]+\/[^/@\s]+(@\S+)?|oci:\S+|pip:.+)$/,
    'a source is "file:PATH" (relative to the recipe directory), "hf:ORG/NAME[@REVISION]", "oci:REGISTRY/NAME:TAG" or "pip:REQUIREMENTS"',
  )
  .describe(
    'Where the component comes from: file:PATH (relative to the recipe directory), hf:ORG/NAME[@REVISION], oci:REGISTRY/NAME[:TAG|@sha256:DIGEST] for kind image (or kind model: a ModelPack model artifact), or pip:REQUIREMENTS (a requirements file relative to the recipe directory) for kind wheels',
  );

const globs = z.array(z.string().min(1)).min(1);

/** An adapter's base: a model component of this recipe, pinned (layout/adapter-base.ts checks it). */
const adapterBase = z
  .object({
    component: name.describe('the model component the adapter was trained on'),
    revision: z
      .string()
      .regex(
        /^([0-9a-f]{40}|sha256:[0-9a-f]{64})$/,
        "a revision is the base's Hub commit (40 hex digits) or, for an oci: base, its manifest digest (sha256:<64 hex>)",
      )
      .optional()
      .describe("the base's exact revision: its Hub commit (hf:), or its manifest digest (oci:)"),
    digest: z
      .string()
      .regex(/^sha256:[0-9a-f]{64}$/, 'write sha256: and the 64 lowercase hex digits sha256sum prints')
      .optional()
      .describe('sha256:<hex> of a weights file of the base (what `sha256sum model.gguf` prints)'),
  })
  .strict()
  .refine((b) => b.revision !== undefined || b.digest !== undefined, {
    message: 'pin the base: give its revision, its weights digest, or both',
    path: ['revision'],
  })
  .describe(
    'kind adapter: the base model it is bound to; bundle and install refuse it when that base is missing or different',
  );

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
      .enum(['model', 'adapter', 'files', 'image', 'wheels'])
      .describe(
        'model: weights and tokenizer files; adapter: a LoRA adapter of a model component (hf: or file:; GGUF for llamacpp, a PEFT directory for vllm), bound to it by base; files: configs and documents; image: a container image (oci:); wheels: a Python wheelhouse installed into a venv on the host (pip:)',
      ),
    source,
    base: adapterBase.optional(),
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
    license: oneLineText(256)
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
  .refine((c) => (c.kind === 'adapter') === (c.base !== undefined), {
    message:
      'a component of kind adapter names its base model (base.component and its revision or digest), and only an adapter does',
    path: ['base'],
  })
  .refine((c) => c.kind !== 'adapter' || c.source.startsWith('hf:') || c.source.startsWith('file:'), {
    message: 'a component of kind adapter takes an hf: or a file: source',
    path: ['source'],
  })
  .refine((c) => c.kind !== 'image' || c.source.startsWith('oci:'), {
    message: 'a component of kind image takes an oci: source',
    path: ['kind'],
  })
  .refine((c) => !c.source.startsWith('oci:') || c.kind === 'image' || c.kind === 'model', {
    message: 'an oci: source makes a component of kind image, or of kind model (a ModelPack model artifact)',
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

const goldenPrompt = z
  .object({
    name,
    service: name.optional().describe('the service asked (default: the first model service)'),
    prompt: promptText,
    maxTokens: LIMITS.maxTokens.default(32),
    temperature: LIMITS.temperature.default(0),
    expect: answerPattern.describe('a regular expression (JavaScript, unicode) the answer must match'),
  })
  .strict();

const evalSets = z
  .object({
    k: LIMITS.topK
      .optional()
      .describe('passages retrieved per question for hit@k and MRR (default: the RAG service topK, else 3)'),
    thresholds: evalThresholdsSchema
      .default({})
      .describe('what every set must reach; a release below them is rolled back at install'),
    sets: z
      .array(
        z
          .object({
            name,
            file: oneLineText(1024)
              .min(1)
              .describe('a JSONL file relative to the recipe directory, one question a line'),
            service: name
              .optional()
              .describe(
                'the service asked (default: the RAG service when the set names sources, else the first model service)',
              ),
            maxTokens: LIMITS.maxTokens.default(32),
            documents: z
              .array(oneLineText(1024).min(1))
              .default([])
              .describe(
                'text, Markdown or HTML files (relative to the recipe directory) ingested for the run and removed after it',
              ),
          })
          .strict(),
      )
      .min(1),
  })
  .strict();

const verify = z
  .object({
    chat: z
      .object({ prompt: promptText, maxTokens: LIMITS.maxTokens.default(16) })
      .strict()
      .default({ prompt: 'Say hello.', maxTokens: 16 }),
    embeddings: z
      .object({ input: promptText, dimension: LIMITS.dimension })
      .strict()
      .nullable()
      .default(null),
    golden: z
      .array(goldenPrompt)
      .default([])
      .describe('prompts whose answers must match a pattern after install'),
    eval: evalSets
      .optional()
      .describe(
        'evaluation sets run after verification (and by apertus eval); their thresholds gate install',
      ),
  })
  .strict();

export const recipeSchema = z
  .object({
    apiVersion: z.literal(RECIPE_API_VERSION),
    kind: z.literal(RECIPE_KIND),
    metadata: z
      .object({
        name,
        version: versionString,
        description: oneLineText().default(''),
      })
      .strict(),
    components: z.array(component).min(1),
    services: z.array(recipeServiceSchema).default([]),
    verify: verify.default({ chat: { prompt: 'Say hello.', maxTokens: 16 }, embeddings: null, golden: [] }),
  })
  .strict()
  .superRefine((recipe, ctx) => {
    const issue = (path: Array<string | number>, message: string) =>
      ctx.addIssue({ code: 'custom', path, message });
    recipe.components.forEach((c, i) => {
      const reserved = RESERVED_COMPONENTS[c.name];
      if (reserved !== undefined) issue(['components', i, 'name'], `"${c.name}" is reserved: ${reserved}`);
    });
    for (const found of uniquenessIssues(recipe.components, recipe.services))
      issue(found.path, found.message);
    const byName = new Map(recipe.components.map((c) => [c.name, c]));
    recipe.components.forEach((c, i) => {
      if (c.base === undefined) return;
      const base = byName.get(c.base.component);
      if (base?.kind !== 'model') {
        const models = recipe.components.filter((m) => m.kind === 'model').map((m) => m.name);
        issue(
          ['components', i, 'base', 'component'],
          `adapter ${c.name} is bound to base model ${c.base.component}, which is not a model component of this recipe (models: ${models.join(', ') || 'none'})`,
        );
      } else if (c.base.revision !== undefined && base.source.startsWith('file:')) {
        issue(
          ['components', i, 'base', 'revision'],
          `base model ${base.name} is local files (${base.source}), which have no revision: pin it by base.digest, the sha256 of its weights file`,
        );
      }
    });
    const services = new Map(recipe.services.map((s) => [s.name, s]));
    const kinds = new Map(recipe.components.map((c) => [c.name, c.kind]));
    const modelServer = (s: RecipeService) => recipeAdapterOf(s).recipeModel(s);
    const view: RecipeView = {
      componentKind: (component) => kinds.get(component),
      componentNames: [...kinds.keys()],
      adapterBase: (component) => byName.get(component)?.base?.component,
      runtimeOf: (service) => services.get(service)?.runtime,
      modelServer: (service) => {
        const found = services.get(service);
        return found === undefined ? undefined : modelServer(found);
      },
      modelServerNames: recipe.services.filter((s) => modelServer(s) !== null).map((s) => s.name),
    };
    recipe.services.forEach((s, i) => {
      for (const found of recipeAdapterOf(s).checkRecipe(s, view))
        issue(['services', i, ...found.path], found.message);
    });
    if (recipe.verify.embeddings && !recipe.services.some((s) => modelServer(s)?.embeddings)) {
      issue(['verify', 'embeddings'], 'embeddings are verified but no service sets "embeddings: true"');
    }
    for (const found of repeatedKeys(recipe.verify.eval?.sets ?? [], (s) => s.name))
      issue(['verify', 'eval', 'sets', found.index, 'name'], `set "${found.key}" is named twice`);
    recipe.verify.eval?.sets.forEach((s, i) => {
      if (s.service !== undefined && !services.has(s.service)) {
        issue(
          ['verify', 'eval', 'sets', i, 'service'],
          `no service named "${s.service}" (services: ${[...services.keys()].join(', ')})`,
        );
      }
    });
    recipe.verify.golden.forEach((g, i) => {
      if (g.service !== undefined && !services.has(g.service)) {
        issue(
          ['verify', 'golden', i, 'service'],
          `no service named "${g.service}" (services: ${[...services.keys()].join(', ')})`,
        );
      }
    });
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
