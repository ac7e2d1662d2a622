import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ApertusError } from '../../src/core/errors.js';
import { loadRecipe, type RecipeProblem } from '../../src/core/spec/load-recipe.js';
import { recipeJsonSchema } from '../../src/core/spec/recipe-schema.js';

const DEMO = path.resolve('bundles/demo');

async function recipeWith(text: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'apertus-recipe-'));
  const file = path.join(dir, 'apertus.yaml');
  await writeFile(file, text);
  return file;
}

async function problemsOf(
  text: string,
): Promise<{ error: ApertusError; problems: RecipeProblem[]; file: string }> {
  const file = await recipeWith(text);
  const error = await loadRecipe(file).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApertusError);
  const apertusError = error as ApertusError;
  expect(apertusError.code).toBe('recipe-invalid');
  return {
    error: apertusError,
    problems: (apertusError.details as { problems: RecipeProblem[] }).problems,
    file,
  };
}

describe('recipe loading', () => {
  it('loads the demo recipe with defaults applied', async () => {
    const loaded = await loadRecipe(DEMO);
    expect(loaded.file).toBe(path.join(DEMO, 'apertus.yaml'));
    expect(loaded.recipe.metadata).toMatchObject({ name: 'demo', version: '0.1.0' });
    expect(loaded.recipe.services[0]).toMatchObject({ runtime: 'llamacpp', threads: 1, embeddings: true });
  });

  it('names file, YAML path and line of a wrong type', async () => {
    const demo = await readFile(path.join(DEMO, 'apertus.yaml'), 'utf8');
    const { problems, file, error } = await problemsOf(demo.replace('port: 18080', 'port: "eighty"'));
    const line = demo.split('\n').findIndex((l) => l.includes('port: 18080')) + 1;
    expect(problems).toEqual([expect.objectContaining({ file, path: 'services[0].port', line })]);
    expect(error.message).toContain(`${file}:${line}:`);
    expect(error.hint).toContain('apertus schema');
  });

  it('points an unknown field at the key itself', async () => {
    const { problems } = await problemsOf(
      'apiVersion: apertus.dev/v1\nkind: Bundle\nmetadata:\n  name: x\n  version: 1.0.0\n  colour: blue\ncomponents:\n  - name: m\n    kind: model\n    source: file:m\n',
    );
    expect(problems).toEqual([
      expect.objectContaining({ path: 'metadata', line: 6, message: 'unknown field "colour"' }),
    ]);
  });

  it('reports a missing field at its parent', async () => {
    const { problems } = await problemsOf(
      'apiVersion: apertus.dev/v1\nkind: Bundle\nmetadata:\n  version: 1.0.0\ncomponents:\n  - name: m\n    kind: model\n    source: file:m\n',
    );
    expect(problems).toEqual([expect.objectContaining({ path: 'metadata.name', line: 4 })]);
  });

  it('reports cross-field mistakes at the field', async () => {
    const { problems } = await problemsOf(
      [
        'apiVersion: apertus.dev/v1',
        'kind: Bundle',
        'metadata:',
        '  name: x',
        '  version: 1.0.0',
        'components:',
        '  - name: m',
        '    kind: model',
        '    source: file:m',
        'services:',
        '  - name: llm',
        '    runtime: llamacpp',
        '    model: weights/x.gguf',
        '    modelId: x',
        '    port: 18080',
        '    threads: 1',
        '',
      ].join('\n'),
    );
    expect(problems).toContainEqual(
      expect.objectContaining({
        path: 'services[0].model',
        line: 13,
        message: expect.stringContaining('no component named "weights"'),
      }),
    );
  });

  it('reports YAML syntax errors with their line', async () => {
    const { problems } = await problemsOf('apiVersion: apertus.dev/v1\nkind: [Bundle\n');
    expect(problems[0]?.line).toBeGreaterThanOrEqual(2);
  });

  it('says where to look when the recipe does not exist', async () => {
    await expect(loadRecipe('/nonexistent/recipe')).rejects.toMatchObject({ code: 'recipe-not-found' });
  });

  it('generates a JSON Schema from the same zod schema, and the shipped copy is current', async () => {
    const schema = recipeJsonSchema();
    expect(schema).toMatchObject({
      type: 'object',
      required: expect.arrayContaining(['apiVersion', 'kind', 'metadata']),
    });
    const shipped = JSON.parse(await readFile('bundles/recipe.schema.json', 'utf8'));
    expect(shipped).toEqual(schema);
  });
});

/**
 * Issue 9: the recipe is held to the rules the bundle is loaded with (safe-values.ts), so
 * what would be refused on a host is refused here first, at the field.
 */
describe('recipe values that would reach a host unsafely', () => {
  const base = (services: string[], extra: string[] = []) =>
    [
      'apiVersion: apertus.dev/v1',
      'kind: Bundle',
      'metadata:',
      '  name: x',
      '  version: 1.0.0',
      ...extra,
      'components:',
      '  - name: model',
      '    kind: model',
      '    source: file:model',
      '  - name: vllm',
      '    kind: image',
      '    source: oci:docker.io/vllm/vllm-openai:v0.20.0',
      'services:',
      ...services,
      '',
    ].join('\n');
  const llamacpp = (fields: Record<string, string> = {}) => {
    const all = {
      name: 'llm',
      model: 'model/tiny.gguf',
      modelId: 'tiny',
      port: '18080',
      threads: '1',
      ...fields,
    };
    return [
      '  - runtime: llamacpp',
      ...Object.entries(all).map(
        ([key, value]) => `    ${key}: ${JSON.stringify(value).replace(/^"(\d+)"$/, '$1')}`,
      ),
    ];
  };

  it('loads the recipe the cases below start from', async () => {
    const file = await recipeWith(base(llamacpp()));
    await expect(loadRecipe(file)).resolves.toMatchObject({ recipe: { services: [{ name: 'llm' }] } });
  });

  it.each<[string, string, string]>([
    [
      'a version "../victim"',
      base(llamacpp()).replace('version: 1.0.0', 'version: ../victim'),
      'metadata.version',
    ],
    ['a version "."', base(llamacpp()).replace('version: 1.0.0', 'version: "."'), 'metadata.version'],
    ['a name ".."', base(llamacpp()).replace('name: x', 'name: ".."'), 'metadata.name'],
    [
      'a service name that is a shell command',
      base(llamacpp({ name: '$(touch /tmp/x)' })),
      'services[0].name',
    ],
    ['port 0', base(llamacpp({ port: '0' })), 'services[0].port'],
    ['port 70000', base(llamacpp({ port: '70000' })), 'services[0].port'],
    ['a model path out of its component', base(llamacpp({ model: 'model/../x' })), 'services[0].model'],
    ['a model id that reads as a flag', base(llamacpp({ modelId: '-x' })), 'services[0].modelId'],
    [
      'a model id with a right-to-left override',
      base(llamacpp({ modelId: 'a\u202Eb' })),
      'services[0].modelId',
    ],
    [
      'a vLLM extra argument with a newline',
      base([
        '  - { name: gpu, runtime: vllm, image: vllm, model: model, modelId: m, port: 18000,',
        '      extraArgs: ["--enforce-eager\\nExecStartPre=/bin/sh"] }',
      ]),
      'services[0].extraArgs[0]',
    ],
    [
      'a container data directory out of the container path',
      base([
        '  - { name: db, runtime: container, image: vllm, port: 6333, containerPort: 6333, dataDir: /a/../b }',
      ]),
      'services[0].dataDir',
    ],
    [
      'a container environment value with a newline',
      base([
        '  - { name: db, runtime: container, image: vllm, port: 6333, containerPort: 6333, env: { A: "1\\nB=2" } }',
      ]),
      'services[0].env.A',
    ],
    ['two services of one name', base([...llamacpp(), ...llamacpp({ port: '18081' })]), 'services[1].name'],
    [
      'a description with a bidi override',
      base(llamacpp(), ['  description: "safe\u202Eexe.txt"']),
      'metadata.description',
    ],
  ])('refuses %s, naming the field', async (_what, text, field) => {
    const { problems } = await problemsOf(text);
    expect(problems.map((p) => p.path)).toContain(field);
  });
});

/** Issue 12: a LoRA adapter is a component bound to its base model, served over that model only. */
describe('adapters in a recipe', () => {
  const DIGEST = `sha256:${'a'.repeat(64)}`;
  const recipe = (components: string[], service: string[]) =>
    [
      'apiVersion: apertus.dev/v1',
      'kind: Bundle',
      'metadata:',
      '  name: x',
      '  version: 1.0.0',
      'components:',
      '  - name: model',
      '    kind: model',
      '    source: file:model',
      '  - name: other',
      '    kind: model',
      '    source: hf:org/other@main',
      ...components,
      'services:',
      '  - name: llm',
      '    runtime: llamacpp',
      '    model: model/m.gguf',
      '    modelId: base',
      '    port: 18080',
      '    threads: 1',
      ...service,
      '',
    ].join('\n');
  const lora = (base: string[], kind = 'adapter', source = 'file:lora') => [
    '  - name: lora',
    `    kind: ${kind}`,
    `    source: ${source}`,
    ...base,
  ];
  const served = (adapter = 'lora/l.gguf', id = 'tuned') => [
    '    adapters:',
    `      - adapter: ${adapter}`,
    `        modelId: ${id}`,
  ];
  const messages = async (text: string) =>
    (await problemsOf(text)).problems.map((p) => `${p.path}: ${p.message}`);

  it('loads an adapter pinned to its base by digest and served over that base', async () => {
    const loaded = await loadRecipe(
      await recipeWith(
        recipe(lora(['    base:', '      component: model', `      digest: ${DIGEST}`]), served()),
      ),
    );
    expect(loaded.recipe.components[2]).toMatchObject({
      kind: 'adapter',
      base: { component: 'model', digest: DIGEST },
    });
  });

  it.each<[string, string[], string[], RegExp]>([
    [
      'an adapter without a base',
      lora([]),
      [],
      /^components\[2\]\.base: a component of kind adapter names its base/,
    ],
    [
      'a base without a pin',
      lora(['    base:', '      component: model']),
      [],
      /^components\[2\]\.base\.revision: pin the base/,
    ],
    [
      'a base that is not a model',
      lora(['    base:', '      component: nowhere', `      digest: ${DIGEST}`]),
      [],
      /^components\[2\]\.base\.component: adapter lora is bound to base model nowhere, which is not a model component of this recipe \(models: model, other\)/,
    ],
    [
      'a revision for local files',
      lora(['    base:', '      component: model', `      revision: ${'b'.repeat(40)}`]),
      [],
      /^components\[2\]\.base\.revision: base model model is local files .*pin it by base\.digest/,
    ],
    [
      'a base on a component that is no adapter',
      lora(['    base:', '      component: model', `      digest: ${DIGEST}`], 'files'),
      [],
      /^components\[2\]\.base: .*only an adapter does/,
    ],
    [
      'a service serving a component that is no adapter',
      [],
      served('other/x.gguf'),
      /^services\[0\]\.adapters\[0\]\.adapter: no adapter component named "other"/,
    ],
    [
      'a service serving an adapter of another base',
      lora(['    base:', '      component: other', `      digest: ${DIGEST}`]),
      served(),
      /^services\[0\]\.adapters\[0\]\.adapter: adapter lora is bound to base model other, but this service serves model/,
    ],
    [
      "an adapter served under the base's id",
      lora(['    base:', '      component: model', `      digest: ${DIGEST}`]),
      served('lora/l.gguf', 'base'),
      /^services\[0\]\.adapters\[0\]\.modelId: model id "base" is already served/,
    ],
  ])('refuses %s, at the field', async (_what, components, service, expected) => {
    expect(await messages(recipe(components, service))).toEqual([expect.stringMatching(expected)]);
  });

  it('refuses an adapter from an image registry: it takes hf: or file:', async () => {
    const pinned = ['    base:', '      component: model', `      digest: ${DIGEST}`];
    expect(await messages(recipe(lora(pinned, 'adapter', 'oci:r.example/lora:1'), []))).toContain(
      'components[2].source: a component of kind adapter takes an hf: or a file: source',
    );
  });
});
