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
