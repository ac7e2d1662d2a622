/**
 * The pgvector store (templates/rag/pgvector-store.mjs) against real pgvector: PGlite with
 * its `vector` extension over the Postgres wire protocol (test/helpers/pglite-server.ts),
 * reached with the `pg` client on a kernel-chosen port. Insert, cosine search against a
 * brute-force answer through the HNSW index, replace, delete, the collection lock, the
 * advisory-locked writes, re-indexing (and an interrupted one), and hostile input.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgvectorStore, reindexPgvectorStore, vectorLiteral } from '../../templates/rag/pgvector-store.mjs';
import { CollectionLockError, StoreDamagedError } from '../../templates/rag/vector-store.mjs';
import { PGLITE_PASSWORD, type PgliteServer, startPgliteServer } from '../helpers/pglite-server.js';
import { exactTopK, seededVectors } from '../helpers/vectors.js';

const DIM = 8;
const MODEL = 'test/embedder';

const vectors = (count: number, seed: number, dim = DIM) => seededVectors(count, seed, dim);

let server: PgliteServer;
let dir: string;
let sql: pg.Client;

beforeAll(async () => {
  server = await startPgliteServer();
  dir = await mkdtemp(path.join(tmpdir(), 'apertus-pgvector-'));
  sql = new pg.Client({ connectionString: server.url });
  await sql.connect();
});

afterAll(async () => {
  await sql?.end();
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const open = (collection: string, extra: Record<string, unknown> = {}) =>
  PgvectorStore.open({
    dir: path.join(dir, collection),
    url: server.url,
    collection,
    embeddingModel: MODEL,
    dimension: DIM,
    ...extra,
  });

describe('pgvector store', () => {
  it('inserts documents and finds the exact cosine top-k through the HNSW index', async () => {
    const store = await open('search');
    const all = vectors(60, 7);
    for (let d = 0; d < 6; d++) {
      const chunks = Array.from({ length: 10 }, (_, i) => `doc ${d} chunk ${i}`);
      const result = await store.putDocument(
        {
          id: `doc-${d}`,
          title: `Doc ${d}`,
          source: `file-${d}.txt`,
          format: 'text',
          sha256: 'ab'.repeat(32),
          chars: 100,
        },
        chunks,
        all.slice(d * 10, d * 10 + 10),
      );
      expect(result).toEqual({ replaced: false });
    }
    expect(store.stats()).toEqual({ documents: 6, chunks: 60 });
    const query = vectors(1, 99)[0] as Float32Array;
    const hits = await store.search(query, 5);
    const exact = exactTopK(all, query, 5, 10);
    expect(hits.map((h) => `${h.document}#${h.chunk}`)).toEqual(exact.map((e) => e.key));
    hits.forEach((hit, i) => {
      expect(hit.score).toBeCloseTo(exact[i]?.score as number, 5);
      expect(hit.text).toBe(`doc ${hit.document.slice(4)} chunk ${hit.chunk}`);
      expect(hit.source).toBe(`file-${hit.document.slice(4)}.txt`);
    });
    // The index exists and the planner uses it for the search's ORDER BY once a scan is ruled out.
    const { rows: indexes } = await sql.query(
      "SELECT indexdef FROM pg_indexes WHERE indexname LIKE 'apertus_chunks_%_hnsw' AND tablename = $1",
      [store.chunks],
    );
    expect(indexes[0]?.indexdef).toMatch(/USING hnsw \(embedding vector_cosine_ops\)/);
    await sql.query('BEGIN');
    await sql.query('SET LOCAL enable_seqscan = off');
    const plan = await sql.query(
      `EXPLAIN SELECT document FROM ${store.chunks} ORDER BY embedding <=> $1::vector LIMIT 5`,
      [vectorLiteral(query, DIM)],
    );
    await sql.query('COMMIT');
    expect(plan.rows.map((r) => r['QUERY PLAN']).join('\n')).toMatch(/Index Scan using \S+_hnsw/);
    expect(await store.getDocument('doc-3')).toMatchObject({
      id: 'doc-3',
      title: 'Doc 3',
      chunks: 10,
      format: 'text',
    });
    expect((await store.listDocuments()).map((d) => d.id)).toEqual([
      'doc-0',
      'doc-1',
      'doc-2',
      'doc-3',
      'doc-4',
      'doc-5',
    ]);
    await store.close();
  });

  it('replaces a document whole and deletes it with its chunks', async () => {
    const store = await open('replace');
    const [a, b, c] = vectors(3, 11);
    await store.putDocument(
      { id: 'x', format: 'text' },
      ['one', 'two'],
      [a as Float32Array, b as Float32Array],
    );
    const replaced = await store.putDocument({ id: 'x', format: 'markdown' }, ['three'], [c as Float32Array]);
    expect(replaced).toEqual({ replaced: true });
    expect(store.stats()).toEqual({ documents: 1, chunks: 1 });
    expect((await store.search(a as Float32Array, 5)).map((h) => h.text)).toEqual(['three']);
    expect(await store.deleteDocument('x')).toBe(true);
    expect(await store.deleteDocument('x')).toBe(false);
    expect(store.stats()).toEqual({ documents: 0, chunks: 0 });
    expect(await store.getDocument('x')).toBeNull();
    const { rows } = await sql.query(`SELECT count(*)::int AS n FROM ${store.chunks}`);
    expect(rows[0].n).toBe(0);
    await store.close();
  });

  it('locks the collection to its model and dimension, in the database and in the mirror', async () => {
    const store = await open('locked');
    await store.putDocument({ id: 'd', format: 'text' }, ['text'], vectors(1, 3));
    await store.close();
    await expect(open('locked', { embeddingModel: 'other/model' })).rejects.toThrow(CollectionLockError);
    // A fresh data dir does not lift the lock: the database holds it.
    await expect(
      PgvectorStore.open({
        dir: path.join(dir, 'elsewhere'),
        url: server.url,
        collection: 'locked',
        embeddingModel: MODEL,
        dimension: DIM + 1,
      }),
    ).rejects.toThrow(/locked to embedding model "test\/embedder" \(dimension 8\)/);
    const mirror = JSON.parse(await readFile(path.join(dir, 'locked', 'collection.json'), 'utf8'));
    expect(mirror).toMatchObject({
      store: 'pgvector',
      collection: 'locked',
      embeddingModel: MODEL,
      dimension: DIM,
    });
    expect(JSON.stringify(mirror)).not.toContain(PGLITE_PASSWORD);
    // A data dir that belongs to another store or collection is refused, not taken over.
    await expect(
      PgvectorStore.open({
        dir: path.join(dir, 'locked'),
        url: server.url,
        collection: 'another',
        embeddingModel: MODEL,
        dimension: DIM,
      }),
    ).rejects.toThrow(StoreDamagedError);
  });

  it('keeps a document whole when two stores write it at once (advisory-locked transactions)', async () => {
    const one = await open('race');
    const two = await PgvectorStore.open({
      dir: path.join(dir, 'race-2'),
      url: server.url,
      collection: 'race',
      embeddingModel: MODEL,
      dimension: DIM,
    });
    const writes = [];
    for (let i = 0; i < 6; i++) {
      const store = i % 2 === 0 ? one : two;
      const count = 1 + (i % 3);
      writes.push(
        store.putDocument(
          { id: 'shared', format: 'text' },
          Array.from({ length: count }, (_, j) => `w${i} c${j}`),
          vectors(count, 100 + i),
        ),
      );
    }
    await Promise.all(writes);
    const document = await one.getDocument('shared');
    const { rows } = await sql.query(
      `SELECT text FROM ${one.chunks} WHERE document = 'shared' ORDER BY chunk`,
    );
    expect(rows).toHaveLength(document?.chunks as number);
    // Every chunk comes from one write: no interleaving of two puts.
    expect(new Set(rows.map((r) => r.text.split(' ')[0])).size).toBe(1);
    await one.close();
    await two.close();
  });

  it('re-indexes into a new table and switches in one transaction; an interrupted run changes nothing', async () => {
    const store = await open('reindex');
    await store.putDocument({ id: 'a', format: 'text' }, ['alpha', 'beta', 'gamma'], vectors(3, 21));
    await store.putDocument({ id: 'b', format: 'text' }, ['delta'], vectors(1, 22));
    const oldTable = store.chunks;
    await store.close();
    const failing = reindexPgvectorStore({
      dir: path.join(dir, 'reindex'),
      url: server.url,
      collection: 'reindex',
      embeddingModel: 'new/model',
      dimension: 4,
      batchSize: 2,
      embed: async (texts: string[]) => {
        if (texts.includes('gamma')) throw new Error('runtime went away');
        return texts.map(() => [1, 0, 0, 0]);
      },
    });
    await expect(failing).rejects.toThrow(/runtime went away/);
    const still = await open('reindex');
    expect(still.stats()).toEqual({ documents: 2, chunks: 4 });
    expect(still.chunks).toBe(oldTable);
    await still.close();

    const progress: number[] = [];
    const result = await reindexPgvectorStore({
      dir: path.join(dir, 'reindex'),
      url: server.url,
      collection: 'reindex',
      embeddingModel: 'new/model',
      dimension: 4,
      batchSize: 3,
      embed: async (texts: string[]) => texts.map((t) => (t === 'delta' ? [0, 1, 0, 0] : [1, 0, 0, 0])),
      onProgress: (done: number) => progress.push(done),
    });
    expect(result).toEqual({ documents: 2, chunks: 4 });
    expect(progress).toEqual([3, 4]);
    await expect(open('reindex')).rejects.toThrow(CollectionLockError);
    const fresh = await PgvectorStore.open({
      dir: path.join(dir, 'reindex'),
      url: server.url,
      collection: 'reindex',
      embeddingModel: 'new/model',
      dimension: 4,
    });
    expect(fresh.chunks).not.toBe(oldTable);
    expect((await fresh.search(Float32Array.from([0, 1, 0, 0]), 1))[0]).toMatchObject({
      document: 'b',
      text: 'delta',
    });
    const { rows } = await sql.query('SELECT to_regclass($1) AS t', [oldTable]);
    expect(rows[0].t).toBeNull();
    await fresh.close();
  });

  it('refuses hostile names and vectors, and never prints the password', async () => {
    await expect(open("x'; DROP TABLE apertus_collections; --")).rejects.toThrow(/collection name/);
    const store = await open('hostile');
    const id = 'o\'brien"; DROP TABLE x; --';
    await store.putDocument({ id, title: "it's", format: 'text' }, ["it's $1 text"], vectors(1, 5));
    expect(await store.getDocument(id)).toMatchObject({ id, title: "it's" });
    const bad = Float32Array.from({ length: DIM }, () => 0);
    bad[2] = Number.NaN;
    await expect(store.putDocument({ id: 'nan', format: 'text' }, ['x'], [bad])).rejects.toThrow(
      /non-finite/,
    );
    await expect(
      store.putDocument({ id: 'short', format: 'text' }, ['x'], [Float32Array.from([1, 2])]),
    ).rejects.toThrow(/dimension 2/);
    await expect(store.search(Float32Array.from([1]), 3)).rejects.toThrow(/dimension 1/);
    expect(store.stats()).toEqual({ documents: 1, chunks: 1 });
    await store.close();
    await writeFile(path.join(dir, 'unreachable.txt'), '');
    const error = await PgvectorStore.open({
      dir: path.join(dir, 'unreachable'),
      url: `postgresql://postgres:${PGLITE_PASSWORD}@127.0.0.1:1/postgres`,
      collection: 'c',
      embeddingModel: MODEL,
      dimension: DIM,
    }).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/pgvector at 127\.0\.0\.1:1\/postgres/);
    expect((error as Error).message).not.toContain(PGLITE_PASSWORD);
  });
});
