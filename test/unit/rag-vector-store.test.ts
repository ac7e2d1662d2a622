/**
 * The RAG service's embedded vector store (templates/rag/vector-store.mjs) on real temp
 * dirs: exact top-k against a brute-force scan, replace and delete, reopen after what a
 * crash leaves, compaction into a new generation, the model lock and re-indexing.
 */
import { appendFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CollectionLockError,
  FileVectorStore,
  reindexFileVectorStore,
  StoreDamagedError,
} from '../../templates/rag/vector-store.mjs';
import { seededRandom } from '../helpers/seeded-random.js';

const DIM = 24;

/** Deterministic pseudo-random vectors (xorshift), so failures repeat. */
function vectors(count: number, seed: number): Float32Array[] {
  const next = seededRandom(seed);
  return Array.from({ length: count }, () => Float32Array.from({ length: DIM }, next));
}

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += (a[i] as number) * (b[i] as number);
    na += (a[i] as number) ** 2;
    nb += (b[i] as number) ** 2;
  }
  return dot / Math.sqrt(na * nb);
}

let base: string;
let counter = 0;
const freshDir = () => path.join(base, `store-${++counter}`);
const open = (dir: string, embeddingModel = 'model-a', dimension = DIM) =>
  FileVectorStore.open({ dir, embeddingModel, dimension });
const doc = (id: string) => ({ id, title: `Title ${id}`, source: `${id}.md`, format: 'markdown' });
const texts = (id: string, n: number) => Array.from({ length: n }, (_, i) => `${id} chunk ${i}`);

beforeAll(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'apertus-vector-store-'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('FileVectorStore', () => {
  it('returns the exact top-k by cosine, as a brute-force scan does', async () => {
    const store = open(freshDir());
    const all: Array<{ id: string; chunk: number; vector: Float32Array }> = [];
    for (let d = 0; d < 20; d++) {
      const vs = vectors(15, d + 1);
      await store.putDocument(doc(`d${d}`), texts(`d${d}`, 15), vs);
      vs.forEach((vector, chunk) => {
        all.push({ id: `d${d}`, chunk, vector });
      });
    }
    for (const query of vectors(10, 999)) {
      const hits = await store.search(query, 7);
      const expected = all
        .map((e) => ({ ...e, score: cosine(e.vector, query) }))
        .sort((a, b) => b.score - a.score)
        .slice(0, 7);
      expect(hits.map((h: { document: string; chunk: number }) => `${h.document}#${h.chunk}`)).toEqual(
        expected.map((e) => `${e.id}#${e.chunk}`),
      );
      hits.forEach((hit: { score: number }, i: number) => {
        expect(hit.score).toBeCloseTo(expected[i]?.score as number, 5);
      });
    }
    const exact = await store.search(all[42]?.vector as Float32Array, 1);
    expect(exact[0]).toMatchObject({ document: 'd2', chunk: 12, text: 'd2 chunk 12', title: 'Title d2' });
    expect(exact[0].score).toBeCloseTo(1, 6);
    await store.close();
  });

  it('replaces a document by id, deletes by tombstone, and keeps both over a reopen', async () => {
    const dir = freshDir();
    const store = open(dir);
    const [a, b, c] = vectors(3, 5) as [Float32Array, Float32Array, Float32Array];
    expect(await store.putDocument(doc('x'), ['old'], [a])).toEqual({ replaced: false });
    expect(await store.putDocument(doc('x'), ['new one', 'new two'], [b, c])).toEqual({ replaced: true });
    expect(await store.putDocument(doc('y'), ['y'], [a])).toEqual({ replaced: false });
    expect(store.stats()).toEqual({ documents: 2, chunks: 3 });
    expect((await store.search(a, 5)).map((h: { text: string }) => h.text)).not.toContain('old');
    expect(await store.deleteDocument('y')).toBe(true);
    expect(await store.deleteDocument('y')).toBe(false);
    await store.close();

    const again = open(dir);
    expect(again.stats()).toEqual({ documents: 1, chunks: 2 });
    expect(await again.getDocument('x')).toMatchObject({ id: 'x', chunks: 2, source: 'x.md' });
    expect(await again.getDocument('y')).toBeNull();
    const hit = (await again.search(b, 1))[0];
    expect(hit).toMatchObject({ document: 'x', chunk: 0, text: 'new one' });
    await again.close();
  });

  it('reopens after a crash: a torn record line and uncommitted vector rows are cut', async () => {
    const dir = freshDir();
    const store = open(dir);
    const vs = vectors(4, 8);
    await store.putDocument(doc('kept'), texts('kept', 4), vs);
    await store.close();
    const gen = path.join(dir, 'gen-1');
    // A put that died between its two writes, and one that died inside its record line.
    await appendFile(path.join(gen, 'vectors.f32'), Buffer.alloc(DIM * 4 * 3, 1));
    await appendFile(path.join(gen, 'records.jsonl'), '{"op":"put","id":"lost","first":4,"cou');
    const reopened = open(dir);
    expect(reopened.stats()).toEqual({ documents: 1, chunks: 4 });
    expect((await stat(path.join(gen, 'vectors.f32'))).size).toBe(4 * DIM * 4);
    expect((await readFile(path.join(gen, 'records.jsonl'), 'utf8')).endsWith('}\n')).toBe(true);
    await reopened.putDocument(doc('after'), ['after'], vectors(1, 9));
    await reopened.close();
    expect(open(dir).stats()).toEqual({ documents: 2, chunks: 5 });
  });

  it('refuses to open a damaged store, naming the file and line', async () => {
    const dir = freshDir();
    const store = open(dir);
    await store.putDocument(doc('a'), ['a'], vectors(1, 3));
    await store.putDocument(doc('b'), ['b'], vectors(1, 4));
    await store.close();
    const records = path.join(dir, 'gen-1', 'records.jsonl');
    const lines = (await readFile(records, 'utf8')).split('\n');
    await writeFile(records, [`${lines[0]?.slice(0, -3)}`, ...lines.slice(1)].join('\n'));
    expect(() => open(dir)).toThrow(StoreDamagedError);
    expect(() => open(dir)).toThrow(/records\.jsonl line 1/);

    const short = freshDir();
    const s2 = open(short);
    await s2.putDocument(doc('a'), texts('a', 3), vectors(3, 3));
    await s2.close();
    await writeFile(path.join(short, 'gen-1', 'vectors.f32'), Buffer.alloc(DIM * 4));
    expect(() => open(short)).toThrow(/holds 1 rows but .* commits rows up to 3/);
  });

  it('compacts into a new generation once tombstones outnumber live rows', async () => {
    const dir = freshDir();
    const store = open(dir);
    for (let d = 0; d < 30; d++)
      await store.putDocument(doc(`d${d}`), texts(`d${d}`, 10), vectors(10, d + 50));
    const keep = vectors(10, 50 + 29);
    for (let d = 0; d < 29; d++) await store.deleteDocument(`d${d}`);
    expect(JSON.parse(await readFile(path.join(dir, 'collection.json'), 'utf8')).generation).toBeGreaterThan(
      1,
    );
    expect((await readdir(dir)).filter((e) => e.startsWith('gen-'))).toHaveLength(1);
    expect(store.stats()).toEqual({ documents: 1, chunks: 10 });
    expect((await store.search(keep[3] as Float32Array, 1))[0]).toMatchObject({ document: 'd29', chunk: 3 });
    await store.putDocument(doc('new'), ['n'], vectors(1, 7));
    await store.close();
    const reopened = open(dir);
    expect(reopened.stats()).toEqual({ documents: 2, chunks: 11 });
    expect((await reopened.search(keep[9] as Float32Array, 1))[0]).toMatchObject({
      document: 'd29',
      chunk: 9,
    });
    await reopened.close();
  });

  it('is locked to its embedding model and dimension, and re-indexes to another', async () => {
    const dir = freshDir();
    const store = open(dir);
    await store.putDocument(doc('a'), ['alpha', 'beta'], vectors(2, 11));
    await store.close();

    for (const [model, dimension] of [
      ['model-b', DIM],
      ['model-a', 8],
    ] as const) {
      let error: unknown;
      try {
        open(dir, model, dimension);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(CollectionLockError);
      const message = (error as Error).message;
      expect(message).toContain(`"model-a" (dimension ${DIM})`);
      expect(message).toContain(`--embedding-model "${model}" --dimension ${dimension}`);
      expect(message).toContain('--reindex');
    }

    const embedded: string[] = [];
    const result = await reindexFileVectorStore({
      dir,
      embeddingModel: 'model-b',
      dimension: 8,
      embed: async (batch: string[]) => {
        embedded.push(...batch);
        return batch.map((t) => Float32Array.from({ length: 8 }, (_, i) => (t === 'beta' ? i : 8 - i)));
      },
    });
    expect(result).toEqual({ documents: 1, chunks: 2 });
    expect(embedded.sort()).toEqual(['alpha', 'beta']);
    expect(() => open(dir)).toThrow(CollectionLockError);
    const reindexed = open(dir, 'model-b', 8);
    const query = Float32Array.from({ length: 8 }, (_, i) => i);
    expect((await reindexed.search(query, 1))[0]).toMatchObject({ document: 'a', chunk: 1, text: 'beta' });
    await reindexed.close();
  });

  it('refuses vectors of the wrong dimension or with non-finite values', async () => {
    const store = open(freshDir());
    await expect(store.putDocument(doc('a'), ['a'], [new Float32Array(DIM - 1)])).rejects.toThrow(
      /dimension/,
    );
    const nan = new Float32Array(DIM).fill(Number.NaN);
    await expect(store.putDocument(doc('a'), ['a'], [nan])).rejects.toThrow(/non-finite/);
    expect(store.stats()).toEqual({ documents: 0, chunks: 0 });
    await store.close();
  });
});
