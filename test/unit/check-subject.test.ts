/**
 * What `check` judges hosts against, read the one way for a bundle and its recipe, and for
 * a bare model directory.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundle } from '../../src/core/bundle/bundle.js';
import { type CheckSubject, loadCheckSubject } from '../../src/core/operations/check-subject.js';
import { generateTinyLora, generateTinyModel, TINY_LORA } from '../../src/core/tiny-model/generate.js';
import { apertusLikeRepo } from '../helpers/fake-hub.js';
import { writeHfCache } from '../helpers/hf-cache.js';
import { rejection } from '../helpers/rejection.js';

const spec = apertusLikeRepo();
const servedFiles = spec.files.filter((f) => !f.path.includes('/'));
/** What the repo's own shard index says the weights take. */
const indexedWeightBytes = (
  JSON.parse(String(spec.files.find((f) => f.path === 'model.safetensors.index.json')?.content)) as {
    metadata: { total_size: number };
  }
).metadata.total_size;

let work: string;
let recipe: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'apertus-check-subject-'));
  recipe = path.join(work, 'recipe');
  await mkdir(path.join(recipe, 'gguf'), { recursive: true });
  await mkdir(path.join(recipe, 'apertus'), { recursive: true });
  await mkdir(path.join(recipe, 'lora'), { recursive: true });
  await writeFile(path.join(recipe, 'gguf', 'tiny-llama.gguf'), generateTinyModel());
  await writeFile(path.join(recipe, 'lora', TINY_LORA.fileName), generateTinyLora());
  for (const file of servedFiles) await writeFile(path.join(recipe, 'apertus', file.path), file.content);
  await writeFile(
    path.join(recipe, 'apertus.yaml'),
    [
      'apiVersion: apertus.dev/v1',
      'kind: Bundle',
      'metadata: { name: two-models, version: 0.1.0 }',
      'components:',
      '  - { name: tiny, kind: model, source: "file:gguf" }',
      '  - { name: apertus, kind: model, source: "file:apertus" }',
      `  - { name: lora, kind: adapter, source: "file:lora", base: { component: tiny, digest: "sha256:${createHash('sha256').update(generateTinyModel()).digest('hex')}" } }`,
      'services:',
      '  - { name: llm, runtime: llamacpp, model: tiny/tiny-llama.gguf, modelId: tiny, port: 18089, threads: 1, contextSize: 256,',
      `      embeddings: true, adapters: [{ adapter: lora/${TINY_LORA.fileName}, modelId: tiny-lora }] }`,
    ].join('\n'),
  );
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('a bundle and its recipe', () => {
  it('give the same workloads, ports and container needs', async () => {
    const fromRecipe = (await loadCheckSubject({ recipe, env: {} })) as CheckSubject;
    const written = await bundle({ recipePath: recipe, outDir: path.join(work, 'out'), cli: false, env: {} });
    if (written.dryRun) throw new Error('a dry run wrote no bundle');
    const fromBundle = (await loadCheckSubject({ bundle: written.path })) as CheckSubject;

    const judged = (s: CheckSubject) => ({
      workloads: s.workloads,
      ports: s.ports,
      needsContainers: s.needsContainers,
    });
    expect(judged(fromBundle)).toEqual(judged(fromRecipe));
    expect(fromRecipe.workloads.map((w) => [w.label, w.weights?.source, w.contexts])).toEqual([
      [
        'tiny/tiny-llama.gguf (llamacpp, service llm)',
        `GGUF tensor data + 1 LoRA adapter (lora/${TINY_LORA.fileName})`,
        // The base's context, the adapter's and the embeddings': a KV cache each.
        3,
      ],
      ['apertus/config.json (vLLM)', '2 safetensors headers', undefined],
    ]);
    expect(fromRecipe.workloads[1]?.weights?.bytes).toBe(indexedWeightBytes);
    expect(fromRecipe.ports).toEqual([{ port: 18089, service: 'llm' }]);
    expect(fromRecipe.kind).toBe('recipe');
    expect(fromBundle.kind).toBe('bundle');
  });
});

describe('--model', () => {
  it('reads a Hugging Face snapshot folder through its links, counting the bytes they point at', async () => {
    const { dir, sha } = await writeHfCache(path.join(work, 'hf-home'), spec);
    const snapshot = path.join(dir, 'snapshots', sha);
    const subject = (await loadCheckSubject({ model: snapshot })) as CheckSubject;
    expect(subject.workloads).toHaveLength(1);
    expect(subject.workloads[0]).toMatchObject({
      label: `${sha}/config.json (vLLM)`,
      weights: { bytes: indexedWeightBytes, source: '2 safetensors headers' },
    });
    const repoBytes = spec.files.reduce((sum, f) => sum + Buffer.byteLength(f.content), 0);
    expect(subject.disk).toMatchObject({ kind: 'estimate', bytes: repoBytes });
  });

  it('a folder without config.json is refused, naming the file', async () => {
    const empty = path.join(work, 'no-config');
    await mkdir(empty);
    await writeFile(path.join(empty, 'README.md'), 'no model here\n');
    expect(await rejection(loadCheckSubject({ model: empty }))).toMatchObject({
      code: 'model-file-missing',
      kind: 'user',
      message: `${empty} holds no config.json, which the fit check reads the model's shape from.`,
    });
  });
});
