import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApertusError } from '../../src/core/errors.js';
import { createLocalTransport } from '../../src/core/host/local-transport.js';
import { PROJECT_ROOT } from '../../src/core/project-root.js';
import {
  checkRagCollectionLock,
  collectRagFiles,
  RAG_FILES,
  type RagServiceSpec,
  ragDataPaths,
  renderRagCommand,
} from '../../src/core/runtimes/rag/rag-service.js';

const spec: RagServiceSpec = {
  name: 'rag',
  runtime: 'rag',
  port: 18090,
  runtimeUrl: 'http://127.0.0.1:18080',
  embeddingModel: 'apertus-demo-tiny',
  dimension: 64,
  chatModel: 'apertus-demo-tiny',
  chunkSize: 300,
  topK: 3,
};

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'apertus-rag-service-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('RAG service wiring', () => {
  it('keeps its data under <root>/data/rag', () => {
    expect(ragDataPaths('/var/lib/apertus')).toEqual({
      dataDir: '/var/lib/apertus/data/rag',
      auditLog: '/var/lib/apertus/data/rag/audit.log',
      auditCheckpoints: '/var/lib/apertus/data/rag/audit.log.checkpoints',
      collection: '/var/lib/apertus/data/rag/collection.json',
    });
  });

  it('renders the command line, loopback only, optional flags only when set', () => {
    const paths = { ...ragDataPaths('/srv/a'), checkpointKey: '/srv/a/keys/host.key' };
    expect(renderRagCommand(spec, { node: '/r/bin/node', server: '/r/rag/server.mjs', ...paths })).toEqual([
      '/r/bin/node',
      '/r/rag/server.mjs',
      ...['--host', '127.0.0.1', '--port', '18090', '--data-dir', '/srv/a/data/rag'],
      ...['--audit-log', '/srv/a/data/rag/audit.log', '--checkpoint-key', '/srv/a/keys/host.key'],
      ...['--runtime-url', 'http://127.0.0.1:18080'],
      ...['--embedding-model', 'apertus-demo-tiny', '--dimension', '64', '--chat-model', 'apertus-demo-tiny'],
      ...['--chunk-size', '300', '--top-k', '3'],
    ]);
    expect(() => renderRagCommand({ ...spec, dimension: 0 }, { node: 'n', server: 's', ...paths })).toThrow(
      /dimension must be an integer/,
    );
  });

  it('ships every module of templates/rag that the server imports', async () => {
    const files = await collectRagFiles(PROJECT_ROOT);
    expect(files.map((f) => f.path)).toEqual(RAG_FILES.map((f) => `rag/${f}`));
    const modules = (await readdir(path.join(PROJECT_ROOT, 'templates', 'rag'))).filter((f) =>
      f.endsWith('.mjs'),
    );
    expect([...RAG_FILES].sort()).toEqual(modules.sort());
  });

  it('refuses an install whose embedding model differs from the locked collection', async () => {
    const transport = createLocalTransport();
    const dataDir = path.join(dir, 'data', 'rag');
    const wanted = { embeddingModel: 'apertus-demo-tiny', dimension: 64 };
    expect(await checkRagCollectionLock(transport, dataDir, wanted)).toBeNull();
    await mkdir(dataDir, { recursive: true });
    await writeFile(
      path.join(dataDir, 'collection.json'),
      JSON.stringify({ format: 'apertus-rag-collection', formatVersion: 1, ...wanted, generation: 1 }),
    );
    expect(await checkRagCollectionLock(transport, dataDir, wanted)).toEqual(wanted);
    const error = await checkRagCollectionLock(transport, dataDir, {
      embeddingModel: 'bge-m3',
      dimension: 1024,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApertusError);
    expect((error as ApertusError).code).toBe('rag-collection-locked');
    expect((error as ApertusError).message).toContain('"apertus-demo-tiny" (dimension 64)');
    expect((error as ApertusError).hint).toContain('--reindex');
  });
});
