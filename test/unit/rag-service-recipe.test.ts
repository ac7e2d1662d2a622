/**
 * The RAG service as recipes declare it: links to the model services (and Qdrant) turned
 * into the URLs, model ids and start order the host runs, and the schema refusing links
 * that cannot work.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isApertusError } from '../../src/core/errors.js';
import { startOrder } from '../../src/core/runtimes/lifecycle.js';
import { ragReleaseCommand } from '../../src/core/runtimes/rag/adapter.js';
import { resolveServices, resolveVerify } from '../../src/core/runtimes/resolve-services.js';
import { loadRecipe } from '../../src/core/spec/load-recipe.js';
import { hostLayout } from '../../src/core/target/layout.js';
import { servedFiles } from '../helpers/served-files.js';

/** Every model path the recipe names is taken as present: these tests are about services. */

describe('the rag service in recipes', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-rag-recipe-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('demo: chats and embeds through llm on loopback, starts after it, stores in the embedded store', async () => {
    const loaded = await loadRecipe('bundles/demo');
    const services = resolveServices(loaded.recipe, loaded.file, servedFiles(loaded.recipe));
    const rag = services.find((s) => s.name === 'rag');
    expect(rag).toMatchObject({
      runtime: 'rag',
      port: 18090,
      runtimeUrl: 'http://127.0.0.1:18080',
      chatModel: 'apertus-demo-tiny',
      embeddingModel: 'apertus-demo-tiny',
      dimension: 64,
      dependsOn: ['llm'],
    });
    expect(rag).not.toHaveProperty('embeddingsUrl');
    expect(startOrder([...services].reverse()).map((s) => s.name)).toEqual(['llm', 'rag']);
    if (rag?.runtime !== 'rag') throw new Error('no rag service');
    const argv = ragReleaseCommand(rag, '/srv/apertus/releases/demo/0.1.0', hostLayout('/srv/apertus'));
    expect(argv.slice(0, 2)).toEqual([
      '/srv/apertus/releases/demo/0.1.0/runtime/bin/node',
      '/srv/apertus/releases/demo/0.1.0/runtime/rag/server.mjs',
    ]);
    expect(argv).toEqual(expect.arrayContaining(['--data-dir', '/srv/apertus/data/rag']));
    // It signs checkpoints of its audit log with the host's own key.
    expect(argv).toEqual(expect.arrayContaining(['--checkpoint-key', '/srv/apertus/keys/host.key']));
    expect(argv).not.toContain('--store');
    expect(resolveVerify(loaded.recipe).golden?.map((g) => g.service)).toEqual(['llm', 'rag']);
  });

  it('apertus-8b-rag: embeds through its own vLLM instance and keeps vectors in Qdrant, started first', async () => {
    const loaded = await loadRecipe('bundles/apertus-8b-rag');
    const services = resolveServices(loaded.recipe, loaded.file, () => null);
    const rag = services.find((s) => s.name === 'rag');
    expect(rag).toMatchObject({
      runtimeUrl: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/),
      embeddingsUrl: 'http://127.0.0.1:18001',
      embeddingModel: 'BAAI/bge-m3',
      dimension: 1024,
      qdrant: { url: 'http://127.0.0.1:6333', collection: 'apertus' },
    });
    const order = startOrder(services).map((s) => s.name);
    for (const before of ['llm', 'embed', 'qdrant'])
      expect(order.indexOf(before)).toBeLessThan(order.indexOf('rag'));
    if (rag?.runtime !== 'rag') throw new Error('no rag service');
    const argv = ragReleaseCommand(rag, '/r/x/1', hostLayout('/r'));
    expect(argv.join(' ')).toContain('--embeddings-url http://127.0.0.1:18001');
    expect(argv.join(' ')).toContain(
      '--store qdrant --qdrant-url http://127.0.0.1:6333 --qdrant-collection apertus',
    );
  });

  it('apertus-8b-pgvector: keeps vectors in the pgvector container, started first; no connection URL in the bundle', async () => {
    const loaded = await loadRecipe('bundles/apertus-8b-pgvector');
    const services = resolveServices(loaded.recipe, loaded.file, () => null);
    const rag = services.find((s) => s.name === 'rag');
    expect(rag).toMatchObject({
      embeddingModel: 'BAAI/bge-m3',
      dimension: 1024,
      pgvector: { port: 15432, collection: 'apertus' },
    });
    expect(rag).not.toHaveProperty('qdrant');
    const postgres = services.find((s) => s.name === 'postgres');
    expect(postgres).toMatchObject({ runtime: 'container' });
    expect(JSON.stringify(postgres)).toMatch(/pgvector/);
    const order = startOrder(services).map((s) => s.name);
    expect(order.indexOf('postgres')).toBeLessThan(order.indexOf('rag'));
    if (rag?.runtime !== 'rag') throw new Error('no rag service');
    const argv = ragReleaseCommand(rag, '/r/x/1', hostLayout('/r'));
    expect(argv.join(' ')).toContain('--store pgvector --pgvector-port 15432 --pgvector-collection apertus');
    expect(argv.join(' ')).not.toMatch(/postgres(ql)?:\/\//);
  });

  it.each([
    [
      'a chat service that does not exist',
      (y: string) => y.replace('    chat: llm\n', '    chat: nowhere\n'),
      'chat',
    ],
    [
      'an embedder that serves no embeddings',
      (y: string) => y.replace('    embeddings: true\n', '    embeddings: false\n'),
      'chat',
    ],
    [
      'a golden prompt for a missing service',
      (y: string) => y.replace('      service: rag\n', '      service: ragg\n'),
      'service',
    ],
    [
      'a pattern that is no regular expression',
      (y: string) => y.replace("expect: '\\S'", "expect: '(['"),
      'expect',
    ],
    [
      'a pgvector store on a service that is no container',
      (y: string) => y.replace('      service: postgres\n', '      service: embed\n'),
      'pgvector',
      'bundles/apertus-8b-pgvector',
    ],
    [
      'both qdrant and pgvector',
      (y: string) => y.replace('    pgvector:\n', '    qdrant:\n      service: postgres\n    pgvector:\n'),
      'pgvector',
      'bundles/apertus-8b-pgvector',
    ],
  ])('refuses %s, naming the field', async (_what, edit, field, recipe = 'bundles/demo') => {
    const dir = path.join(work, field + Math.random().toString(36).slice(2));
    await cp(recipe, dir, { recursive: true });
    const file = path.join(dir, 'apertus.yaml');
    const changed = edit(await readFile(file, 'utf8'));
    expect(changed).not.toBe(await readFile(file, 'utf8'));
    await writeFile(file, changed);
    const error = await loadRecipe(dir).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isApertusError(error)).toBe(true);
    expect(String((error as Error).message)).toMatch(new RegExp(`${field}`));
  });
});
