/**
 * The embedded store's ANN index (templates/rag/ann-index.mjs, ann-worker.mjs) inside the
 * store, on real temp dirs and the real usearch binary: it agrees with the exact scan, is
 * saved with the collection and loaded again, is rebuilt when its files are damaged, stale
 * or another collection's, and never returns deleted or torn-off rows; and it travels in the
 * bundle's runtime tree and runs from a copy of it.
 */
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/project-root.js';
import { collectRuntimeFiles } from '../../src/core/runtimes/runtime-files.js';
import { FileVectorStore, normalise } from '../../templates/rag/vector-store.mjs';
import { seededRandom } from '../helpers/seeded-random.js';

const DIM = 32;

/** Deterministic vectors (xorshift) around a few centres, so neighbours are meaningful. */
function vectors(count: number, seed: number): Float32Array[] {
  const next = seededRandom(seed);
  const centres = Array.from({ length: 8 }, () => Float32Array.from({ length: DIM }, next));
  return Array.from({ length: count }, () => {
    const centre = centres[Math.floor(((next() + 1) / 2) * 7.999)] as Float32Array;
    return Float32Array.from({ length: DIM }, (_, i) => (centre[i] as number) + 0.5 * next());
  });
}

let base: string;
let counter = 0;
const freshDir = () => path.join(base, `store-${++counter}`);
/**
 * Every collection uses the index here, however small, searched widely. HNSW stays
 * approximate even so (usearch inserts on several threads, so the graph differs run to
 * run, and candidates come from int8 distances): an odd miss in 200 is allowed, see RECALL.
 */
const open = (dir: string) =>
  FileVectorStore.open({
    dir,
    embeddingModel: 'm',
    dimension: DIM,
    indexMinCells: 1,
    indexSearch: { expansionSearch: 512, rerank: 10 },
  });
/**
 * recall@10 over 20 queries the tests demand: the bar (0.95). With this wide search
 * it is 0.98 to 1.0 from run to run on 400 rows; why it is not always 1.0 is not known yet.
 */
const RECALL = 0.95;
const texts = (id: string, n: number) => Array.from({ length: n }, (_, i) => `${id} chunk ${i}`);
const stores: FileVectorStore[] = [];
const tracked = (store: FileVectorStore) => {
  stores.push(store);
  return store;
};

/** Puts `documents` documents of `chunks` chunks each; returns their vectors by document id. */
async function fill(store: FileVectorStore, documents: number, chunks: number, seed: number) {
  const byId = new Map<string, Float32Array[]>();
  const all = vectors(documents * chunks, seed);
  for (let d = 0; d < documents; d++) {
    const id = `doc-${seed}-${d}`;
    const rows = all.slice(d * chunks, (d + 1) * chunks);
    await store.putDocument({ id }, texts(id, chunks), rows);
    byId.set(id, rows);
  }
  return byId;
}

async function recallAgainstExact(store: FileVectorStore, queries: Float32Array[], k = 10) {
  let same = 0;
  for (const q of queries) {
    const exact = new Set(store.searchSync(q, k).map((h) => h.text));
    for (const hit of await store.search(q, k)) if (exact.has(hit.text)) same += 1;
  }
  return same / (queries.length * k);
}

beforeAll(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'apertus-ann-index-'));
});
afterAll(async () => {
  for (const store of stores) await store.close().catch(() => {});
  await rm(base, { recursive: true, force: true });
});

describe('the ANN index in the file store', () => {
  it('keeps the float32 rows on disk once indexed: the exact scan and the re-rank read them from the file', async () => {
    const dir = freshDir();
    const store = tracked(open(dir));
    const byId = await fill(store, 20, 10, 21);
    await store.indexReady();
    expect(store.rowsInMemory).toBe(false);
    expect(store.vectors.length).toBe(0);
    const queries = vectors(10, 22);
    const fromDisk = queries.map((q) => store.searchSync(q, 10));
    const indexed = await Promise.all(queries.map((q) => store.search(q, 10)));
    await store.close();

    const exact = tracked(FileVectorStore.open({ dir, embeddingModel: 'm', dimension: DIM, index: 'exact' }));
    expect(exact.rowsInMemory).toBe(true);
    expect(fromDisk).toEqual(queries.map((q) => exact.searchSync(q, 10)));
    // Each score the index returns is the exact float32 cosine of the row it names.
    indexed.forEach((hits, i) => {
      expect(hits).toHaveLength(10);
      for (const hit of hits) {
        const row = byId.get(hit.document)?.[hit.chunk] as Float32Array;
        const [a, b] = [normalise(row), normalise(queries[i] as Float32Array)];
        expect(hit.score).toBeCloseTo(
          a.reduce((sum, x, j) => sum + x * (b[j] as number), 0),
          5,
        );
      }
    });
  });

  it('agrees with the exact scan, scores included, and is saved with the collection', async () => {
    const dir = freshDir();
    const store = tracked(open(dir));
    await fill(store, 15, 100, 1);
    const ready = await store.indexReady();
    expect(ready).toMatchObject({ indexed: true, rows: 1500, note: null });
    const queries = vectors(40, 99);
    expect(await recallAgainstExact(store, queries)).toBeGreaterThanOrEqual(RECALL);
    const [query] = queries as [Float32Array];
    expect(await store.search(query, 5)).toEqual(store.searchSync(query, 5));
    await store.close();
    const files = await readdir(path.join(dir, 'gen-1'));
    expect(files).toEqual(expect.arrayContaining(['index.usearch', 'index.json']));
    const record = JSON.parse(await readFile(path.join(dir, 'gen-1', 'index.json'), 'utf8'));
    expect(record).toMatchObject({
      rows: 1500,
      bytes: (await stat(path.join(dir, 'gen-1', 'index.usearch'))).size,
    });

    const reopened = tracked(open(dir));
    expect(await reopened.indexReady()).toMatchObject({ indexed: true, rows: 1500, note: null });
    expect(await recallAgainstExact(reopened, queries)).toBeGreaterThanOrEqual(RECALL);
    await reopened.close();
  });

  it('finds rows put a moment ago, before the index has them', async () => {
    const store = tracked(open(freshDir()));
    await fill(store, 4, 100, 2);
    await store.indexReady();
    const fresh = await fill(store, 1, 50, 3);
    const [vector] = fresh.get('doc-3-0') as [Float32Array];
    // No wait: the rows not yet added are scanned exactly.
    const [hit] = await store.search(vector, 1);
    expect(hit).toMatchObject({ document: 'doc-3-0', chunk: 0 });
    expect(hit?.score).toBeCloseTo(1, 5);
    await store.close();
  });

  it('never returns deleted documents, before or after a reopen', async () => {
    const dir = freshDir();
    const store = tracked(open(dir));
    const byId = await fill(store, 10, 60, 4);
    await store.indexReady();
    await store.close();
    const again = tracked(open(dir));
    await again.indexReady();
    expect(await again.deleteDocument('doc-4-3')).toBe(true);
    const deleted = byId.get('doc-4-3') as Float32Array[];
    for (const vector of deleted.slice(0, 10)) {
      const hits = await again.search(vector, 10);
      expect(hits.map((h) => h.document)).not.toContain('doc-4-3');
    }
    // Closed without saving the delete into the index: the reopen removes it again.
    again.dropIndex();
    await again.close();
    const third = tracked(open(dir));
    expect((await third.indexReady()).note).toBeNull();
    for (const vector of deleted.slice(0, 10)) {
      const hits = await third.search(vector, 10);
      expect(hits.map((h) => h.document)).not.toContain('doc-4-3');
    }
    await third.close();
  });

  it('rebuilds an index whose file was damaged', async () => {
    const dir = freshDir();
    const store = tracked(open(dir));
    await fill(store, 6, 100, 5);
    await store.close();
    const file = path.join(dir, 'gen-1', 'index.usearch');
    const bytes = await readFile(file);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    await writeFile(file, bytes);
    const reopened = tracked(open(dir));
    const ready = await reopened.indexReady();
    expect(ready.indexed).toBe(true);
    expect(ready.note).toMatch(/digest/);
    expect(await recallAgainstExact(reopened, vectors(20, 98))).toBeGreaterThanOrEqual(RECALL);
    await reopened.close();
  });

  it('rebuilds an index taken from another collection, though its digest matches', async () => {
    const mine = freshDir();
    const other = freshDir();
    for (const [dir, seed] of [
      [mine, 6],
      [other, 7],
    ] as const) {
      const store = tracked(open(dir));
      await fill(store, 6, 100, seed);
      await store.close();
    }
    for (const name of ['index.usearch', 'index.json']) {
      await copyFile(path.join(other, 'gen-1', name), path.join(mine, 'gen-1', name));
    }
    const reopened = tracked(open(mine));
    const ready = await reopened.indexReady();
    expect(ready.note).toMatch(/found themselves/);
    expect(await recallAgainstExact(reopened, vectors(20, 97))).toBeGreaterThanOrEqual(RECALL);
    await reopened.close();
  });

  it('after a torn tail, neither the index nor the scan returns the rows cut off', async () => {
    const dir = freshDir();
    const store = tracked(open(dir));
    await fill(store, 5, 100, 8);
    await store.close();
    const crashed = tracked(open(dir));
    await crashed.indexReady();
    const lost = await fill(crashed, 1, 100, 9);
    await crashed.indexReady();
    // The process dies: nothing saved, and the last record line is cut in half.
    crashed.dropIndex();
    crashed.closeFiles();
    const records = path.join(dir, 'gen-1', 'records.jsonl');
    const size = (await stat(records)).size;
    const lines = (await readFile(records, 'utf8')).trimEnd().split('\n');
    await truncate(records, size - Math.floor((lines.at(-1) as string).length / 2));

    const reopened = tracked(open(dir));
    await reopened.indexReady();
    expect(reopened.stats()).toEqual({ documents: 5, chunks: 500 });
    for (const vector of (lost.get('doc-9-0') as Float32Array[]).slice(0, 10)) {
      const hits = await reopened.search(vector, 5);
      expect(hits.map((h) => h.document)).not.toContain('doc-9-0');
    }
    expect(await recallAgainstExact(reopened, vectors(20, 96))).toBeGreaterThanOrEqual(RECALL);
    await reopened.close();
  });

  it('rebuilds the index of a compacted generation, and rebuilds when its record is stale', async () => {
    const dir = freshDir();
    const store = tracked(open(dir));
    await fill(store, 10, 100, 10);
    await store.indexReady();
    for (let d = 0; d < 6; d++) await store.deleteDocument(`doc-10-${d}`);
    await store.indexReady();
    // Dead rows outnumbered live ones: generation 2, its own index.
    expect(JSON.parse(await readFile(path.join(dir, 'collection.json'), 'utf8')).generation).toBe(2);
    expect(await store.indexReady()).toMatchObject({ indexed: true, rows: 400 });
    expect(await recallAgainstExact(store, vectors(20, 95))).toBeGreaterThanOrEqual(RECALL);
    await store.close();
    const recordPath = path.join(dir, 'gen-2', 'index.json');
    const record = JSON.parse(await readFile(recordPath, 'utf8'));
    await writeFile(recordPath, JSON.stringify({ ...record, rows: 401 }));
    const reopened = tracked(open(dir));
    expect((await reopened.indexReady()).note).toMatch(/covers 401 rows/);
    expect(await recallAgainstExact(reopened, vectors(20, 94))).toBeGreaterThanOrEqual(RECALL);
    await reopened.close();
  });

  it('answers a search that a compaction overtook, and keeps indexing the new generation', async () => {
    const store = tracked(open(freshDir()));
    const byId = await fill(store, 10, 100, 12);
    await store.indexReady();
    const [vector] = byId.get('doc-12-9') as [Float32Array];
    // The search is on the worker while the deletes compact and drop its index.
    const pending = store.search(vector, 3);
    await Promise.all(Array.from({ length: 6 }, (_, d) => store.deleteDocument(`doc-12-${d}`)));
    const [hit] = await pending;
    expect(hit).toMatchObject({ document: 'doc-12-9', chunk: 0 });
    expect(await store.indexReady()).toMatchObject({ indexed: true, rows: 400, note: null });
    await store.close();
  });

  it('leaves small collections exact by default: no worker, no index files', async () => {
    const dir = freshDir();
    const store = tracked(FileVectorStore.open({ dir, embeddingModel: 'm', dimension: DIM }));
    await fill(store, 3, 100, 11);
    expect(await store.indexReady()).toMatchObject({ indexed: false });
    await store.close();
    expect(await readdir(path.join(dir, 'gen-1'))).toEqual(['records.jsonl', 'vectors.f32']);
  });
});

describe('the ANN index in the bundle', () => {
  it('travels in the runtime tree, and the store indexes from a copy of exactly those files', async () => {
    const runtime = await collectRuntimeFiles(PROJECT_ROOT);
    const paths = runtime.tree.map((file) => file.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'rag/ann-index.mjs',
        'rag/ann-worker.mjs',
        'node_modules/usearch/prebuilds/linux-x64/usearch.node',
      ]),
    );
    // Sources and other platforms' binaries stay out.
    expect(paths.filter((p) => /^node_modules\/usearch\/(numkong|c|cpp)\//.test(p))).toEqual([]);
    expect(paths.filter((p) => p.startsWith('node_modules/usearch/prebuilds/linux-arm64/'))).toEqual([]);

    // The rag/ modules and the closure of usearch, as they land on a host.
    const usearchClosure = ['usearch', 'bindings', 'file-uri-to-path', 'node-gyp-build', 'node-addon-api'];
    const root = path.join(base, 'runtime-copy');
    for (const file of runtime.tree) {
      const inClosure = usearchClosure.some((name) => file.path.startsWith(`node_modules/${name}/`));
      if (!file.path.startsWith('rag/') && !inClosure) continue;
      await mkdir(path.dirname(path.join(root, file.path)), { recursive: true });
      await copyFile(file.source, path.join(root, file.path));
    }
    const script = `
      const { FileVectorStore } = await import(${JSON.stringify(pathToFileURL(path.join(root, 'rag', 'vector-store.mjs')).href)});
      const store = FileVectorStore.open({ dir: ${JSON.stringify(path.join(root, 'data'))}, embeddingModel: 'm', dimension: 4, indexMinCells: 1 });
      const vectors = Array.from({ length: 50 }, (_, i) => Float32Array.from([i + 1, 1, i % 3, 2]));
      await store.putDocument({ id: 'a' }, vectors.map((_, i) => 'c' + i), vectors);
      const ready = await store.indexReady();
      const [hit] = await store.search(vectors[7], 1);
      await store.close();
      console.log(JSON.stringify({ ready, hit: hit.text }));`;
    await writeFile(path.join(root, 'check.mjs'), script);
    const { stdout } = await execa(process.execPath, [path.join(root, 'check.mjs')], { cwd: root });
    expect(JSON.parse(stdout)).toEqual({ ready: { indexed: true, rows: 50, note: null }, hit: 'c7' });
  });
});
