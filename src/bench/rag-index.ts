/**
 * The embedded vector store at scale, exact scan against the ANN index, side by side:
 * build time, search p50/p95, recall@10 against the exact answer, RSS, and 50 concurrent
 * clients (their search latency, and how long a cheap request waits meanwhile: what the
 * service's other requests see).
 *
 *   npm run bench:rag -- --chunks 1000000 --dimension 1024 [--queries 50] [--clients 50]
 *       [--clusters N] [--seed 1] [--json]
 *
 * The vectors are clustered, seeded and unit length: `--clusters` centres (default one per
 * 1,000 chunks), each chunk a centre plus noise of 0.6 times its length. Uniform random
 * vectors in 1024 dimensions are all about equally far apart, so no index finds "the"
 * nearest ten among them; real embeddings cluster by topic. Queries come from the same
 * distribution with another seed.
 *
 * Runs on the real store (templates/rag/vector-store.mjs) in a temp dir: ingested with
 * fsync as the service does, then the index built, saved on close, and loaded again on
 * reopen. Not a test: vitest never loads it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { PROJECT_ROOT } from '../core/project-root.js';

interface Hit {
  text: string;
}
interface Store {
  putDocument(document: { id: string }, chunks: string[], vectors: Float32Array[]): Promise<unknown>;
  getDocument(id: string): Promise<unknown>;
  search(vector: Float32Array, k: number): Promise<Hit[]>;
  searchSync(vector: Float32Array, k: number): Hit[];
  indexReady(): Promise<{ indexed: boolean; rows: number; note: string | null }>;
  startIndexIfWorthIt(): void;
  indexOptions: { mode: string; minCells: number; params: unknown };
  rows: number;
  keepsRowsInMemory(rows: number): boolean;
  leaveRowsOnDisk(): void;
  close(): Promise<void>;
}
interface StoreModule {
  FileVectorStore: {
    open(options: {
      dir: string;
      embeddingModel: string;
      dimension: number;
      index?: string;
      indexMinCells?: number;
    }): Store;
  };
  ANN_MIN_CELLS: number;
}
interface AnnModule {
  ANN_PARAMS: {
    quantization: string;
    connectivity: number;
    expansionAdd: number;
    expansionSearch: number;
    rerank: number;
  };
}

const USAGE = `usage: npm run bench:rag -- --chunks N [--dimension 1024] [--queries 50] [--clients 50] [--clusters N] [--seed 1] [--json]`;
const K = 10;
const CHUNKS_PER_DOCUMENT = 1000;

/** xorshift32: fast and seeded; the data only has to be the same on every run. */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

/** About N(0, 1): the sum of three uniforms, rescaled. */
function normalish(next: () => number): number {
  return (next() + next() + next() - 1.5) * 2;
}

function unit(vector: Float32Array): Float32Array {
  let sum = 0;
  for (const x of vector) sum += x * x;
  const norm = Math.sqrt(sum) || 1;
  for (let i = 0; i < vector.length; i++) vector[i] = (vector[i] as number) / norm;
  return vector;
}

class Clustered {
  readonly centres: Float32Array[];
  readonly next: () => number;
  constructor(
    readonly dimension: number,
    clusters: number,
    seed: number,
  ) {
    const centreRandom = random(7);
    this.centres = Array.from({ length: clusters }, () =>
      unit(Float32Array.from({ length: dimension }, () => normalish(centreRandom))),
    );
    this.next = random(seed);
  }
  vector(): Float32Array {
    const centre = this.centres[Math.floor(this.next() * this.centres.length)] as Float32Array;
    const scale = 0.6 / Math.sqrt(this.dimension);
    const out = new Float32Array(this.dimension);
    for (let i = 0; i < this.dimension; i++) out[i] = (centre[i] as number) + scale * normalish(this.next);
    return unit(out);
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

function latency(ms: number[]) {
  const sorted = [...ms].sort((a, b) => a - b);
  return { p50Ms: round(percentile(sorted, 50)), p95Ms: round(percentile(sorted, 95)) };
}

const round = (x: number, digits = 2) => Number(x.toFixed(digits));
// RSS is read after a full collection, so what the store let go of is not counted.
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;
const rssGB = () => {
  collectGarbage();
  return process.memoryUsage().rss / 1e9;
};

/**
 * 50 clients, each searching `perClient` queries back to back, and one probe asking for a
 * document every 5 ms: the probe's latency is how long any other request would wait.
 */
async function concurrent(
  search: (q: Float32Array) => Promise<unknown>,
  queries: Float32Array[],
  clients: number,
  perClient: number,
  probe: () => Promise<unknown>,
) {
  const searchMs: number[] = [];
  const probeMs: number[] = [];
  let running = true;
  const probing = (async () => {
    while (running) {
      const t0 = performance.now();
      await probe();
      await new Promise((r) => setImmediate(r));
      probeMs.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = 0; i < perClient; i++) {
        const q = queries[(c * perClient + i) % queries.length] as Float32Array;
        const t0 = performance.now();
        await search(q);
        searchMs.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  running = false;
  await probing;
  return {
    clients,
    searches: searchMs.length,
    perSecond: round(searchMs.length / seconds, 1),
    search: latency(searchMs),
    otherRequest: latency(probeMs),
  };
}

/** Probe latency with no load, for the comparison. */
async function probeAlone(probe: () => Promise<unknown>) {
  const ms: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    await probe();
    await new Promise((r) => setImmediate(r));
    ms.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 1));
  }
  return latency(ms);
}

export async function runIndexBench(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      chunks: { type: 'string' },
      dimension: { type: 'string', default: '1024' },
      queries: { type: 'string' },
      clients: { type: 'string', default: '50' },
      clusters: { type: 'string' },
      seed: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const int = (name: string, raw: string | undefined, min: number, max: number): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      console.error(`--${name} must be an integer from ${min} to ${max}, got ${raw}\n${USAGE}`);
      process.exit(2);
    }
    return n;
  };
  const chunks = int('chunks', values.chunks, 100, 10_000_000);
  const dimension = int('dimension', values.dimension, 2, 8192);
  const queryCount = int('queries', values.queries ?? (chunks > 200_000 ? '50' : '100'), 1, 10_000);
  const clients = int('clients', values.clients, 1, 1000);
  const clusters = int(
    'clusters',
    values.clusters ?? String(Math.max(16, Math.round(chunks / 1000))),
    1,
    1_000_000,
  );
  const seed = int('seed', values.seed, 1, 2 ** 31);

  const storeUrl = pathToFileURL(path.join(PROJECT_ROOT, 'templates', 'rag', 'vector-store.mjs')).href;
  const annUrl = pathToFileURL(path.join(PROJECT_ROOT, 'templates', 'rag', 'ann-index.mjs')).href;
  const { FileVectorStore } = (await import(storeUrl)) as StoreModule;
  const { ANN_PARAMS } = (await import(annUrl)) as AnnModule;
  const dir = await mkdtemp(path.join(tmpdir(), 'apertus-rag-index-'));
  const log = (line: string) => {
    if (!values.json) console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
  };
  try {
    const rawGB = (chunks * dimension * 4) / 1e9;
    const rss0 = rssGB();
    let store = FileVectorStore.open({ dir, embeddingModel: 'bench', dimension, index: 'exact' });
    const data = new Clustered(dimension, clusters, seed);
    log(`ingesting ${chunks} x ${dimension} (${rawGB.toFixed(2)} GB of float32), ${clusters} clusters`);
    let t0 = performance.now();
    for (let first = 0, d = 0; first < chunks; first += CHUNKS_PER_DOCUMENT, d++) {
      const count = Math.min(CHUNKS_PER_DOCUMENT, chunks - first);
      const vectors = Array.from({ length: count }, () => data.vector());
      await store.putDocument(
        { id: `doc-${d}` },
        vectors.map((_, i) => `c${first + i}`),
        vectors,
      );
    }
    const ingestS = (performance.now() - t0) / 1000;
    const exactRss = rssGB() - rss0;
    const queryData = new Clustered(dimension, clusters, seed + 1);
    const queries = Array.from({ length: queryCount }, () => queryData.vector());
    const probe = () => store.getDocument('doc-0');
    const probeIdle = await probeAlone(probe);

    log(`exact: ${queryCount} queries, one client`);
    const truth: Set<string>[] = [];
    const exactMs: number[] = [];
    for (const q of queries) {
      const t = performance.now();
      const hits = store.searchSync(q, K);
      exactMs.push(performance.now() - t);
      truth.push(new Set(hits.map((h) => h.text)));
    }
    log(`exact: ${clients} clients, one query each`);
    const exactConcurrent = await concurrent(async (q) => store.searchSync(q, K), queries, clients, 1, probe);

    log('index: building');
    store.indexOptions = { ...store.indexOptions, mode: 'auto', minCells: 0 };
    // As a service opened in this mode would: the float32 rows stay in the file.
    if (!store.keepsRowsInMemory(store.rows)) store.leaveRowsOnDisk();
    t0 = performance.now();
    store.startIndexIfWorthIt();
    const ready = await store.indexReady();
    const buildS = (performance.now() - t0) / 1000;
    if (!ready.indexed) throw new Error(`the index was not built: ${ready.note}`);
    const indexRss = rssGB() - rss0;

    const measureIndex = async () => {
      const ms: number[] = [];
      let hits = 0;
      for (const [i, q] of queries.entries()) {
        const t = performance.now();
        const found = await store.search(q, K);
        ms.push(performance.now() - t);
        for (const h of found) if (truth[i]?.has(h.text)) hits += 1;
      }
      return { ...latency(ms), recallAt10: round(hits / (queryCount * K), 4) };
    };
    log(`index: ${queryCount} queries, one client`);
    const indexSingle = await measureIndex();
    log(`index: ${clients} clients, ${Math.max(4, Math.ceil(1000 / clients))} queries each`);
    const indexConcurrent = await concurrent(
      (q) => store.search(q, K),
      queries,
      clients,
      Math.max(4, Math.ceil(1000 / clients)),
      probe,
    );

    log('index: close (saves it), reopen (loads and checks it)');
    t0 = performance.now();
    await store.close();
    const saveS = (performance.now() - t0) / 1000;
    t0 = performance.now();
    store = FileVectorStore.open({
      dir,
      embeddingModel: 'bench',
      dimension,
      index: 'auto',
      indexMinCells: 0,
    });
    const reopened = await store.indexReady();
    const reopenS = (performance.now() - t0) / 1000;
    const reopenRss = rssGB() - rss0;
    const afterReopen = await measureIndex();
    await store.close();

    const report = {
      machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version },
      data: { chunks, dimension, clusters, seed, queries: queryCount, k: K, rawVectorsGB: round(rawGB) },
      index: { library: 'usearch', ...ANN_PARAMS },
      exact: {
        ingestS: round(ingestS, 1),
        ...latency(exactMs),
        recallAt10: 1,
        rssGB: round(exactRss),
        rssPerRaw: round(exactRss / rawGB),
        concurrent: exactConcurrent,
      },
      indexed: {
        buildS: round(buildS, 1),
        ...indexSingle,
        rssGB: round(indexRss),
        rssPerRaw: round(indexRss / rawGB),
        concurrent: indexConcurrent,
        saveOnCloseS: round(saveS, 1),
        reopen: {
          seconds: round(reopenS, 1),
          loadedRows: reopened.rows,
          rssGB: round(reopenRss),
          rssPerRaw: round(reopenRss / rawGB),
          note: reopened.note,
          ...afterReopen,
        },
      },
      otherRequestIdle: probeIdle,
    };
    if (values.json) console.log(JSON.stringify(report, null, 2));
    else {
      const e = report.exact;
      const x = report.indexed;
      const row = (name: string, a: string, b: string) => `  ${name.padEnd(34)} ${a.padEnd(26)} ${b}`;
      const lat = (l: { p50Ms: number; p95Ms: number }) => `${l.p50Ms} / ${l.p95Ms} ms`;
      console.log(
        [
          `RAG store: ${chunks} x ${dimension} clustered unit vectors (${clusters} centres, seed ${seed}), top-${K}, ${queryCount} queries`,
          `  machine ${report.machine.cpus} CPUs, ${report.machine.model}, Node ${report.machine.node}`,
          `  index: usearch HNSW, ${ANN_PARAMS.quantization} vectors, connectivity ${ANN_PARAMS.connectivity}, expansion add ${ANN_PARAMS.expansionAdd} / search ${ANN_PARAMS.expansionSearch}, exact re-rank of ${ANN_PARAMS.rerank} x k`,
          row('', 'exact', 'index'),
          row('build', `ingest ${e.ingestS} s`, `+ ${x.buildS} s`),
          row('search p50 / p95 (1 client)', lat(e), lat(x)),
          row('recall@10', '1', String(x.recallAt10)),
          row('RSS (x raw vectors)', `${e.rssGB} GB (${e.rssPerRaw}x)`, `${x.rssGB} GB (${x.rssPerRaw}x)`),
          row(
            `search p50 / p95 (${clients} clients)`,
            `${lat(e.concurrent.search)}`,
            `${lat(x.concurrent.search)}`,
          ),
          row('  searches/s', String(e.concurrent.perSecond), String(x.concurrent.perSecond)),
          // Little's law: N clients that each wait for their answer cannot see a mean
          // latency below N / throughput, whatever the queue does.
          row(
            '  floor (clients / searches/s)',
            `${round((clients / e.concurrent.perSecond) * 1000)} ms`,
            `${round((clients / x.concurrent.perSecond) * 1000)} ms`,
          ),
          row(
            `other request p50 / p95 (${clients} clients)`,
            lat(e.concurrent.otherRequest),
            lat(x.concurrent.otherRequest),
          ),
          row('other request p50 / p95 (idle)', lat(probeIdle), lat(probeIdle)),
          row('index save (on close)', '', `${x.saveOnCloseS} s`),
          row(
            'reopen: index loaded and checked',
            '',
            `${x.reopen.seconds} s, ${x.reopen.loadedRows} rows${x.reopen.note ? ` (${x.reopen.note})` : ''}`,
          ),
          row('  after reopen p50 / p95, recall@10', '', `${lat(x.reopen)}, ${x.reopen.recallAt10}`),
          row('  after reopen RSS (x raw vectors)', '', `${x.reopen.rssGB} GB (${x.reopen.rssPerRaw}x)`),
        ].join('\n'),
      );
    }
    return 0;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
