// The embedded store's approximate index: an HNSW graph (usearch) on a worker thread.
//
// Why usearch: measured on 100,000 x 1024 clustered unit vectors on the 2-core build
// machine against hnswlib-wasm, hnswlib-node and LanceDB (numbers in the README's RAG
// section), it was the fastest to build and to search, it ships a prebuilt N-API binary
// for linux-x64 inside its npm package (no compiler on the host, one binary for every
// Node ABI), it holds vectors quantised to int8 (a quarter of the float32 rows), and it
// has no 4 GB ceiling (hnswlib-wasm has: a million 1024-dim rows do not fit in wasm32).
//
// The index only proposes candidates: it holds int8 vectors, so its own order among close
// neighbours is rough. The store re-ranks `rerank` x k candidates by the exact float32 dot
// product and drops tombstoned rows, so every score it returns is exact.
//
// Searches are batched: while one request is on the worker, the queries that arrive wait
// and go together as one batch, searched on every core.

import { Worker } from 'node:worker_threads';

/**
 * Measured on clustered 1024-dim data (README, RAG section): with 1,000 rows per cluster,
 * expansion 128 and a re-rank of 4 x k gave recall@10 0.947 at 100,000 rows; the re-rank
 * is cheap (k x rerank dot products), the search expansion costs latency.
 */
export const ANN_PARAMS = Object.freeze({
  library: 'usearch',
  quantization: 'i8',
  connectivity: 16,
  expansionAdd: 128,
  expansionSearch: 256,
  rerank: 10,
});

export class AnnIndex {
  /** Starts the worker; rejects when usearch cannot be loaded here (the store then stays exact). */
  static async start(dimension, params = ANN_PARAMS) {
    const index = new AnnIndex(dimension, params);
    await index.request('reset', {});
    return index;
  }

  constructor(dimension, params) {
    this.dimension = dimension;
    this.params = params;
    this.nextId = 1;
    this.pending = new Map();
    this.queued = [];
    this.searching = false;
    this.failure = null;
    this.worker = new Worker(new URL('./ann-worker.mjs', import.meta.url), {
      workerData: { dimension, ...params },
    });
    // The worker must not keep the service alive on its own, nor die silently.
    this.worker.unref();
    this.worker.on('message', (reply) => {
      const waiter = this.pending.get(reply.id);
      if (waiter === undefined) return;
      this.pending.delete(reply.id);
      if (reply.ok) waiter.resolve(reply.result);
      else waiter.reject(new Error(`the ANN index: ${reply.error}`));
    });
    const fail = (error) => {
      this.failure = error instanceof Error ? error : new Error(`the ANN worker exited with code ${error}`);
      for (const waiter of this.pending.values()) waiter.reject(this.failure);
      this.pending.clear();
      for (const query of this.queued) query.reject(this.failure);
      this.queued = [];
    };
    this.fail = fail;
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => {
      if (this.failure === null) fail(code);
    });
  }

  request(op, payload, transfer = []) {
    if (this.failure !== null) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, op, ...payload }, transfer);
    });
  }

  /** Adds `rows` (row numbers) with their unit vectors, `rows.length` x dimension. */
  add(rows, vectors) {
    return this.request('add', { rows, vectors }, [vectors.buffer]);
  }

  remove(rows) {
    return this.request('remove', { rows });
  }

  /** Up to `k` candidate rows for a unit query vector, best first by the quantised score. */
  search(query, k) {
    return new Promise((resolve, reject) => {
      this.queued.push({ query, k, resolve, reject });
      if (!this.searching) this.flush();
    });
  }

  flush() {
    const batch = this.queued;
    this.queued = [];
    if (batch.length === 0) {
      this.searching = false;
      return;
    }
    this.searching = true;
    const k = Math.max(...batch.map((query) => query.k));
    const queries = new Float32Array(batch.length * this.dimension);
    batch.forEach((query, i) => {
      queries.set(query.query, i * this.dimension);
    });
    this.request('search', { queries, count: batch.length, k }, [queries.buffer]).then(
      (results) => {
        batch.forEach((query, i) => {
          query.resolve(results[i].subarray(0, query.k));
        });
        this.flush();
      },
      (error) => {
        for (const query of batch) query.reject(error);
        this.flush();
      },
    );
  }

  /** Writes the index to `path` durably; resolves to { bytes, sha256 }. */
  save(path) {
    return this.request('save', { path });
  }

  /** Replaces the index with the one at `path`, checked against its recorded size and digest. */
  load(path, bytes, sha256) {
    return this.request('load', { path, bytes, sha256 });
  }

  reset() {
    return this.request('reset', {});
  }

  /**
   * Ends the worker after what it is doing: terminating it inside a native add or search
   * aborts the whole process (usearch throws across the N-API boundary). Waiting callers
   * are rejected at once; a worker that has not ended within 10 s is terminated.
   */
  async close() {
    if (this.failure === null) {
      const exited = new Promise((resolve) => this.worker.once('exit', resolve));
      this.worker.postMessage({ id: 0, op: 'close' });
      this.fail(new Error('the ANN index is closed'));
      let timer;
      await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, 10_000)))]);
      clearTimeout(timer);
    }
    await this.worker.terminate();
  }
}
