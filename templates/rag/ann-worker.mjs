// The approximate-nearest-neighbour index of the embedded store, on its own thread.
//
// usearch's add and search are synchronous native calls: a search over a million rows
// takes a millisecond or two, an add of a thousand rows far longer. Run on the service's
// event loop they would stall every other request; here they only queue behind each other.
// Messages are handled strictly in arrival order, which the store relies on: a search sent
// after an add sees the added rows. Keys are the store's row numbers.
//
// Requests: { id, op, ... } -> { id, ok, result } or { id, ok: false, error }.

import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fdatasyncSync, fstatSync, openSync, readSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';

// The CommonJS build: the ESM one locates its native binary through stack traces, which
// fails when the package is loaded from a path outside the working directory.
const { Index } = createRequire(import.meta.url)('usearch');

const { dimension, quantization, connectivity, expansionAdd, expansionSearch } = workerData;
const threads = Math.max(1, availableParallelism());

function emptyIndex() {
  return new Index({
    dimensions: dimension,
    metric: 'ip',
    quantization,
    connectivity,
    expansion_add: expansionAdd,
    expansion_search: expansionSearch,
  });
}

let index = emptyIndex();

function keysOf(rows) {
  const keys = new BigUint64Array(rows.length);
  for (let i = 0; i < rows.length; i++) keys[i] = BigInt(rows[i]);
  return keys;
}

function sha256OfFile(path) {
  const fd = openSync(path, 'r');
  try {
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(16 << 20);
    let position = 0;
    for (;;) {
      const read = readSync(fd, buffer, 0, buffer.length, position);
      if (read === 0) break;
      hash.update(buffer.subarray(0, read));
      position += read;
    }
    return { sha256: hash.digest('hex'), bytes: position };
  } finally {
    closeSync(fd);
  }
}

const handlers = {
  add({ rows, vectors }) {
    if (rows.length > 0) index.add(keysOf(rows), vectors, threads);
    return { size: index.size() };
  },
  remove({ rows }) {
    for (const row of rows) index.remove(BigInt(row));
    return { size: index.size() };
  },
  /** `queries` holds `count` query vectors; each gets up to `k` candidate rows, best first. */
  search({ queries, count, k }) {
    const results = [];
    if (index.size() === 0) {
      for (let q = 0; q < count; q++) results.push(new Uint32Array(0));
      return results;
    }
    if (count === 1) {
      const matches = index.search(queries, k, 1);
      results.push(Uint32Array.from(matches.keys, Number));
      return results;
    }
    const batch = index.search(queries, k, Math.min(threads, count));
    for (let q = 0; q < count; q++) {
      const found = Number(batch.counts[q]);
      results.push(Uint32Array.from(batch.keys.subarray(q * k, q * k + found), Number));
    }
    return results;
  },
  /** Writes the index next to `path`, fsyncs it, renames it into place; returns its size and digest. */
  save({ path }) {
    const temp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      index.save(temp);
      const fd = openSync(temp, 'r+');
      try {
        fdatasyncSync(fd);
      } finally {
        closeSync(fd);
      }
      const digest = sha256OfFile(temp);
      renameSync(temp, path);
      return digest;
    } catch (error) {
      rmSync(temp, { force: true });
      throw error;
    }
  },
  /** Loads `path` only when its size and digest are the ones recorded when it was saved. */
  load({ path, bytes, sha256 }) {
    const fd = openSync(path, 'r');
    const size = fstatSync(fd).size;
    closeSync(fd);
    if (size !== bytes) throw new Error(`${path} holds ${size} bytes, its record says ${bytes}`);
    const digest = sha256OfFile(path);
    if (digest.sha256 !== sha256)
      throw new Error(`${path} does not match the digest recorded when it was saved`);
    const fresh = emptyIndex();
    fresh.load(path);
    if (fresh.dimensions() !== dimension) {
      throw new Error(`${path} holds vectors of dimension ${fresh.dimensions()}, not ${dimension}`);
    }
    index = fresh;
    return { size: index.size() };
  },
  reset() {
    index = emptyIndex();
    return { size: 0 };
  },
};

parentPort.on('message', (message) => {
  // Asked to close once every earlier message is handled: let go of the index and the port,
  // and the thread ends on its own, never cut off inside a native call.
  if (message.op === 'close') {
    index = null;
    parentPort.close();
    return;
  }
  try {
    const handler = handlers[message.op];
    if (handler === undefined) throw new Error(`unknown op ${message.op}`);
    parentPort.postMessage({ id: message.id, ok: true, result: handler(message) });
  } catch (error) {
    parentPort.postMessage({ id: message.id, ok: false, error: error.message });
  }
});
