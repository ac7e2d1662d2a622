/**
 * The Qdrant store (templates/rag/qdrant-store.mjs) against Qdrant's documented REST
 * contract (test/helpers/qdrant-contract-server.ts, which cites the pages: collections,
 * payload indexes, points upsert, delete, count, scroll and search, v1.15 reference).
 * No live Qdrant is reachable from this machine or CI, so this proves that every request
 * the store sends is one the documentation accepts, and that it reads the documented
 * responses right; it does not prove Qdrant's own behaviour (ranking, durability).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { QdrantVectorStore } from '../../templates/rag/qdrant-store.mjs';
import { CollectionLockError } from '../../templates/rag/vector-store.mjs';
import { type QdrantContractServer, startQdrantContractServer } from '../helpers/qdrant-contract-server.js';
import { exactTopK, seededVectors } from '../helpers/vectors.js';

const DIM = 6;
const MODEL = 'test/embedder';
const API_KEY = 'qdrant-key-for-the-contract-test';

let dir: string;
let qdrant: QdrantContractServer;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'apertus-qdrant-contract-'));
});
afterEach(async () => {
  await qdrant?.close();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const open = (name: string, extra: Record<string, unknown> = {}) =>
  QdrantVectorStore.open({
    dir: path.join(dir, name),
    url: qdrant.url,
    collection: name,
    embeddingModel: MODEL,
    dimension: DIM,
    apiKey: API_KEY,
    ...extra,
  });

describe('Qdrant store against the documented REST contract', () => {
  it('creates the collection and its payload indexes, then inserts, searches, replaces, lists and deletes', async () => {
    qdrant = await startQdrantContractServer({ apiKey: API_KEY });
    const store = await open('docs');
    expect(qdrant.collections.get('docs')).toMatchObject({ size: DIM, distance: 'Cosine' });
    expect([...(qdrant.collections.get('docs')?.indexes ?? [])]).toEqual([
      ['document', 'keyword'],
      ['chunk', 'integer'],
    ]);
    const all = seededVectors(12, 5, DIM);
    for (let d = 0; d < 3; d++) {
      const chunks = Array.from({ length: 4 }, (_, i) => `doc ${d} chunk ${i}`);
      await store.putDocument(
        {
          id: `doc-${d}`,
          title: `Doc ${d}`,
          source: `s${d}.md`,
          format: 'markdown',
          sha256: 'cd'.repeat(32),
          chars: 40,
        },
        chunks,
        all.slice(d * 4, d * 4 + 4),
      );
    }
    expect(store.stats()).toEqual({ documents: 3, chunks: 12 });
    const query = seededVectors(1, 77, DIM)[0] as Float32Array;
    const hits = await store.search(query, 3);
    const exact = exactTopK(all, query, 3, 4);
    expect(hits.map((h) => `${h.document}#${h.chunk}`)).toEqual(exact.map((e) => e.key));
    hits.forEach((h, i) => {
      expect(h.score).toBeCloseTo(exact[i]?.score as number, 5);
      expect(h.text).toBe(`doc ${h.document.slice(4)} chunk ${h.chunk}`);
    });
    expect(
      await store.putDocument({ id: 'doc-1', format: 'text' }, ['only'], seededVectors(1, 9, DIM)),
    ).toEqual({ replaced: true });
    expect(store.stats()).toEqual({ documents: 3, chunks: 9 });
    expect((await store.listDocuments()).map((d) => [d.id, d.chunks])).toEqual([
      ['doc-0', 4],
      ['doc-1', 1],
      ['doc-2', 4],
    ]);
    expect(await store.getDocument('doc-2')).toMatchObject({
      id: 'doc-2',
      title: 'Doc 2',
      source: 's2.md',
      format: 'markdown',
    });
    expect(await store.deleteDocument('doc-0')).toBe(true);
    expect(await store.deleteDocument('doc-0')).toBe(false);
    expect(store.stats()).toEqual({ documents: 2, chunks: 5 });

    // The contract: nothing the docs refuse, the key on every request, every write waited for.
    expect(qdrant.violations).toEqual([]);
    for (const request of qdrant.requests) expect(request.headers['api-key']).toBe(API_KEY);
    const writes = qdrant.requests.filter(
      (r) => (r.method === 'PUT' && r.path !== '/collections/docs') || r.path.endsWith('/points/delete'),
    );
    expect(writes.length).toBeGreaterThan(0);
    for (const write of writes) expect(write.query).toBe('?wait=true');
    // Point ids are UUIDs (ExtendedPointId), derived from document and chunk, so a re-put overwrites.
    const upserts = qdrant.requests.filter(
      (r) => r.method === 'PUT' && r.path === '/collections/docs/points',
    );
    for (const upsert of upserts)
      for (const point of (upsert.body as { points: Array<{ id: string }> }).points)
        expect(point.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const mirror = JSON.parse(await readFile(path.join(dir, 'docs', 'collection.json'), 'utf8'));
    expect(mirror).toMatchObject({
      store: 'qdrant',
      collection: 'docs',
      embeddingModel: MODEL,
      dimension: DIM,
    });
    await store.close();
  });

  it('pages through listings with next_page_offset', async () => {
    qdrant = await startQdrantContractServer();
    const store = await open('many', { apiKey: undefined });
    // More first chunks than one scroll page holds (256), stored as an upsert would store them.
    const points = qdrant.collections.get('many')?.points as Map<string, unknown>;
    for (let d = 0; d < 300; d++) {
      const id = `00000000-0000-4000-8000-${String(d).padStart(12, '0')}`;
      points.set(id, {
        id,
        vector: [1, 0, 0, 0, 0, 0],
        version: 0,
        payload: { document: `d${String(d).padStart(3, '0')}`, chunk: 0, chunks: 1, format: 'text' },
      });
    }
    const listed = await store.listDocuments();
    expect(listed).toHaveLength(300);
    expect(new Set(listed.map((d) => d.id)).size).toBe(300);
    const scrolls = qdrant.requests.filter((r) => r.path.endsWith('/points/scroll'));
    expect(scrolls.length).toBeGreaterThan(1);
    expect(qdrant.violations).toEqual([]);
  });

  it('refuses a collection of another size, and says so without touching it', async () => {
    qdrant = await startQdrantContractServer();
    qdrant.collections.set('foreign', {
      size: DIM + 2,
      distance: 'Cosine',
      points: new Map(),
      indexes: new Map(),
    });
    await expect(open('foreign', { apiKey: undefined })).rejects.toThrow(CollectionLockError);
    expect(qdrant.requests.filter((r) => r.method !== 'GET')).toEqual([]);
  });

  it('reports Qdrant errors with the HTTP status and the documented error text', async () => {
    qdrant = await startQdrantContractServer({ apiKey: 'another-key' });
    await expect(open('denied')).rejects.toThrow(/HTTP 401: .*Must provide an API key/);
    const url = qdrant.url;
    await qdrant.close();
    await expect(
      QdrantVectorStore.open({
        dir: path.join(dir, 'gone'),
        url,
        collection: 'gone',
        embeddingModel: MODEL,
        dimension: DIM,
      }),
    ).rejects.toThrow(/cannot be reached/);
  });
});
