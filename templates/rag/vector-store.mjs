// The RAG service's vector stores behind one interface, and the embedded default.
//
// interface VectorStore {
//   readonly kind: string;                       // 'file', 'qdrant', ...
//   readonly lock: { embeddingModel: string, dimension: number };
//   stats(): { documents: number, chunks: number };
//   putDocument(document: { id, title, source, format, sha256, chars },
//               chunks: string[], vectors: Float32Array[]): Promise<{ replaced: boolean }>;
//   deleteDocument(id: string): Promise<boolean>;  // false when there was none
//   getDocument(id: string): Promise<DocumentInfo | null>;
//   listDocuments(): Promise<DocumentInfo[]>;      // DocumentInfo: { id, title, source, format, sha256, chars, chunks, ingestedAt }
//   search(vector: Float32Array, k: number): Promise<Array<{ document, chunk, score, text, title, source }>>;
//   close(): Promise<void>;
// }
// Scores are cosine similarities in [-1, 1], best first. A store is locked to one embedding
// model id and dimension when its collection is created; opening it with others throws
// CollectionLockError. Qdrant and pgvector adapters implement the same interface.
//
// The embedded store ('file'), and why not sqlite-vec or LanceDB: both are native modules,
// so the bundle would carry a build per platform and libc, and the Node binary's ABI would
// pin their versions; the service would no longer be plain JavaScript on the Node we ship.
// At the sizes an embedded store is for (up to a few hundred thousand chunks; beyond that,
// Qdrant or pgvector) an exact scan over a Float32Array is fast (about 1 ms per 10,000
// chunks of dimension 384 on one core) and never returns a wrong neighbour, which an
// approximate index can. What is left to get right is durability, and that is small:
//
//   <dir>/collection.json           { format, formatVersion, embeddingModel, dimension, generation, ... }
//                                    written to a temp file, fsync'd, renamed: the switch
//   <dir>/gen-<N>/vectors.f32       unit-length Float32 vectors, little-endian, one row per chunk
//   <dir>/gen-<N>/records.jsonl     one JSON line per change: {"op":"put",...,"first","count","chunks"}
//                                    or {"op":"delete","id"}
//
// A put appends its vectors and fsyncs them, then appends its record line and fsyncs it:
// the line is the commit. At open, a torn last line and vector rows no committed line
// claims (a crash between the two writes) are cut off; a damaged line in the middle, or
// fewer rows than the lines claim, stops the open with the path named. Deletes are
// tombstones (a delete line); a put of an existing id replaces it in the same line. When
// tombstoned rows outnumber live ones, the live data is written to generation N+1 and
// collection.json switched to it, so a crash leaves either generation whole. The data
// lives in memory as one Float32Array (rows x dimension x 4 bytes), the file is only
// read at open.

import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fdatasyncSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';

const FORMAT = 'apertus-rag-collection';
const FORMAT_VERSION = 1;
const COLLECTION_FILE = 'collection.json';
const VECTORS_FILE = 'vectors.f32';
const RECORDS_FILE = 'records.jsonl';
/** Compact when tombstoned rows are at least this many and outnumber the live ones. */
const COMPACT_MIN_DEAD_ROWS = 256;

export class CollectionLockError extends Error {
  /** `where`: what holds the collection; `remedy`: how to move it to the wanted model. */
  constructor(where, locked, wanted, remedy) {
    super(
      `the collection ${where} is locked to embedding model "${locked.embeddingModel}" (dimension ${locked.dimension}), ` +
        `but the service was started with --embedding-model "${wanted.embeddingModel}" --dimension ${wanted.dimension}; ` +
        `vectors of different models cannot be compared. ${remedy}; to keep the collection, start the service with ` +
        `--embedding-model "${locked.embeddingModel}" --dimension ${locked.dimension}`,
    );
    this.name = 'CollectionLockError';
    this.locked = locked;
    this.wanted = wanted;
  }
}

export class StoreDamagedError extends Error {}

/** Scales a vector to unit length, so cosine similarity is a dot product; zero stays zero. */
export function normalise(vector) {
  const out = Float32Array.from(vector);
  let sum = 0;
  for (let i = 0; i < out.length; i++) sum += out[i] * out[i];
  const norm = Math.sqrt(sum);
  if (norm > 0) for (let i = 0; i < out.length; i++) out[i] /= norm;
  return out;
}

function syncDir(dir) {
  const fd = openSync(dir, 'r');
  try {
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd, buffer) {
  let offset = 0;
  while (offset < buffer.length) offset += writeSync(fd, buffer, offset, buffer.length - offset);
}

function writeFileDurably(path, text) {
  const temp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(temp, 'w', 0o640);
  try {
    writeAll(fd, Buffer.from(text));
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
}

export function readCollection(dir) {
  const file = join(dir, COLLECTION_FILE);
  if (!existsSync(file)) return null;
  let collection;
  try {
    collection = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new StoreDamagedError(`${file} is not valid JSON (${error.message})`);
  }
  if (collection?.format !== FORMAT || collection.formatVersion !== FORMAT_VERSION) {
    throw new StoreDamagedError(
      `${file} is not an apertus RAG collection of format version ${FORMAT_VERSION} (format ${collection?.format}, version ${collection?.formatVersion})`,
    );
  }
  if (
    typeof collection.embeddingModel !== 'string' ||
    !Number.isInteger(collection.dimension) ||
    !Number.isInteger(collection.generation)
  ) {
    throw new StoreDamagedError(`${file} lacks embeddingModel, dimension or generation`);
  }
  return collection;
}

export class FileVectorStore {
  /**
   * Opens the collection in `dir`, creating it (locked to this model and dimension) when
   * there is none. With `ignoreLock`, a collection locked to another model opens anyway
   * (for re-indexing only: its vectors are not comparable with the new model's).
   */
  static open({ dir, embeddingModel, dimension, ignoreLock = false }) {
    if (endianness() !== 'LE') throw new StoreDamagedError('the embedded store needs a little-endian CPU');
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    let collection = readCollection(dir);
    if (collection === null) {
      collection = {
        format: FORMAT,
        formatVersion: FORMAT_VERSION,
        embeddingModel,
        dimension,
        generation: 1,
        createdAt: new Date().toISOString(),
      };
      mkdirSync(join(dir, 'gen-1'), { recursive: true });
      for (const file of [VECTORS_FILE, RECORDS_FILE])
        closeSync(openSync(join(dir, 'gen-1', file), 'w', 0o640));
      syncDir(join(dir, 'gen-1'));
      writeFileDurably(join(dir, COLLECTION_FILE), `${JSON.stringify(collection, null, 2)}\n`);
      syncDir(dir);
    }
    const store = new FileVectorStore(dir, collection);
    store.replay();
    store.removeStaleGenerations();
    if (!ignoreLock && (collection.embeddingModel !== embeddingModel || collection.dimension !== dimension)) {
      const chunks = store.stats().chunks;
      store.closeFiles();
      throw new CollectionLockError(
        `in ${dir}`,
        { embeddingModel: collection.embeddingModel, dimension: collection.dimension },
        { embeddingModel, dimension },
        `To re-index the ${chunks} stored chunks with "${embeddingModel}", start the service once with --reindex ` +
          '(it re-embeds every stored chunk through the runtime, then locks the collection to the new model)',
      );
    }
    store.compactIfWorthIt();
    return store;
  }

  constructor(dir, collection) {
    this.kind = 'file';
    this.dir = dir;
    this.collection = collection;
    this.lock = { embeddingModel: collection.embeddingModel, dimension: collection.dimension };
    this.dimension = collection.dimension;
    this.capacity = 0;
    this.rows = 0;
    this.vectors = new Float32Array(0);
    /** Per row: the document record that owns it, or null once tombstoned. */
    this.rowDocument = [];
    /** Per row: the chunk index within its document, and its text (null once tombstoned). */
    this.rowChunk = [];
    this.rowText = [];
    this.documents = new Map();
    this.liveRows = 0;
    this.writeTail = Promise.resolve();
    this.vectorsFd = null;
    this.recordsFd = null;
  }

  generationDir(generation = this.collection.generation) {
    return join(this.dir, `gen-${generation}`);
  }

  stats() {
    return { documents: this.documents.size, chunks: this.liveRows };
  }

  ensureCapacity(rows) {
    if (rows <= this.capacity) return;
    const capacity = Math.max(rows, this.capacity * 2, 1024);
    const next = new Float32Array(capacity * this.dimension);
    next.set(this.vectors.subarray(0, this.rows * this.dimension));
    this.vectors = next;
    this.capacity = capacity;
  }

  /** Reads the current generation into memory, cutting what a crash left uncommitted. */
  replay() {
    const dir = this.generationDir();
    const recordsPath = join(dir, RECORDS_FILE);
    const vectorsPath = join(dir, VECTORS_FILE);
    this.recordsFd = openSync(recordsPath, 'r+');
    this.vectorsFd = openSync(vectorsPath, 'r+');
    const raw = readFileSync(recordsPath);
    let committedBytes = 0;
    let lineStart = 0;
    let lineNumber = 0;
    const rowBytes = this.dimension * 4;
    const vectorsSize = fstatSync(this.vectorsFd).size;
    while (lineStart < raw.length) {
      const newline = raw.indexOf(0x0a, lineStart);
      lineNumber += 1;
      if (newline === -1) break; // torn tail: cut below
      let record;
      try {
        record = JSON.parse(raw.subarray(lineStart, newline).toString('utf8'));
      } catch (error) {
        throw new StoreDamagedError(`${recordsPath} line ${lineNumber} is not valid JSON (${error.message})`);
      }
      if (record.op === 'put') {
        if (
          record.first !== this.rows ||
          !Number.isInteger(record.count) ||
          !Array.isArray(record.chunks) ||
          record.chunks.length !== record.count
        ) {
          throw new StoreDamagedError(
            `${recordsPath} line ${lineNumber}: rows ${record.first}+${record.count} do not follow row ${this.rows}`,
          );
        }
        if ((this.rows + record.count) * rowBytes > vectorsSize) {
          throw new StoreDamagedError(
            `${vectorsPath} holds ${Math.floor(vectorsSize / rowBytes)} rows but ${recordsPath} line ${lineNumber} commits rows up to ${this.rows + record.count}`,
          );
        }
        this.ensureCapacity(this.rows + record.count);
        const bytes = Buffer.alloc(record.count * rowBytes);
        readSyncAll(this.vectorsFd, bytes, this.rows * rowBytes);
        this.vectors.set(
          new Float32Array(bytes.buffer, bytes.byteOffset, record.count * this.dimension),
          this.rows * this.dimension,
        );
        this.applyPut(record);
      } else if (record.op === 'delete') {
        this.applyDelete(record.id);
      } else {
        throw new StoreDamagedError(
          `${recordsPath} line ${lineNumber}: unknown op ${JSON.stringify(record.op)}`,
        );
      }
      committedBytes = newline + 1;
      lineStart = newline + 1;
    }
    if (committedBytes < raw.length) {
      ftruncateSync(this.recordsFd, committedBytes);
      fdatasyncSync(this.recordsFd);
    }
    if (vectorsSize > this.rows * rowBytes) {
      ftruncateSync(this.vectorsFd, this.rows * rowBytes);
      fdatasyncSync(this.vectorsFd);
    }
    this.recordsSize = committedBytes;
  }

  applyPut(record) {
    if (this.documents.has(record.id)) this.applyDelete(record.id);
    const document = {
      id: record.id,
      title: record.title ?? null,
      source: record.source ?? null,
      format: record.format ?? 'text',
      sha256: record.sha256 ?? null,
      chars: record.chars ?? null,
      ingestedAt: record.ingestedAt ?? null,
      first: record.first,
      chunks: record.count,
    };
    for (let i = 0; i < record.count; i++) {
      this.rowDocument[record.first + i] = document;
      this.rowChunk[record.first + i] = i;
      this.rowText[record.first + i] = record.chunks[i];
    }
    this.rows = record.first + record.count;
    this.liveRows += record.count;
    this.documents.set(record.id, document);
  }

  applyDelete(id) {
    const document = this.documents.get(id);
    if (document === undefined) return false;
    for (let row = document.first; row < document.first + document.chunks; row++) {
      this.rowDocument[row] = null;
      this.rowText[row] = null;
    }
    this.liveRows -= document.chunks;
    this.documents.delete(id);
    return true;
  }

  removeStaleGenerations() {
    const current = `gen-${this.collection.generation}`;
    for (const entry of readdirSync(this.dir)) {
      if ((entry.startsWith('gen-') && entry !== current) || entry.endsWith('.tmp')) {
        rmSync(join(this.dir, entry), { recursive: true, force: true });
      }
    }
  }

  /** Writes run one at a time; searches read memory and never wait for them. */
  exclusive(task) {
    const result = this.writeTail.then(task);
    this.writeTail = result.catch(() => {});
    return result;
  }

  async putDocument(document, chunks, vectors) {
    if (chunks.length !== vectors.length) throw new Error('one vector per chunk is needed');
    const units = vectors.map((vector, index) => {
      if (vector.length !== this.dimension) {
        throw new Error(
          `chunk ${index}: the vector has dimension ${vector.length}, the collection ${this.dimension}`,
        );
      }
      for (const x of vector)
        if (!Number.isFinite(x)) throw new Error(`chunk ${index}: the vector holds a non-finite value`);
      return normalise(vector);
    });
    return this.exclusive(() => {
      const first = this.rows;
      const record = {
        op: 'put',
        id: document.id,
        title: document.title ?? null,
        source: document.source ?? null,
        format: document.format ?? 'text',
        sha256: document.sha256 ?? null,
        chars: document.chars ?? null,
        ingestedAt: new Date().toISOString(),
        first,
        count: chunks.length,
        chunks,
      };
      const bytes = Buffer.alloc(chunks.length * this.dimension * 4);
      const view = new Float32Array(bytes.buffer, bytes.byteOffset, chunks.length * this.dimension);
      units.forEach((unit, i) => {
        view.set(unit, i * this.dimension);
      });
      const rowBytes = this.dimension * 4;
      const line = Buffer.from(`${JSON.stringify(record)}\n`);
      try {
        writeAllAt(this.vectorsFd, bytes, first * rowBytes);
        fdatasyncSync(this.vectorsFd);
        writeAllAt(this.recordsFd, line, this.recordsSize);
        fdatasyncSync(this.recordsFd);
      } catch (error) {
        // Leave the files as they were before this put, so memory and disk agree.
        try {
          ftruncateSync(this.recordsFd, this.recordsSize);
          ftruncateSync(this.vectorsFd, first * rowBytes);
        } catch {}
        throw error;
      }
      this.recordsSize += line.length;
      const replaced = this.documents.has(document.id);
      this.ensureCapacity(first + chunks.length);
      this.vectors.set(view, first * this.dimension);
      this.applyPut(record);
      this.compactIfWorthIt();
      return { replaced };
    });
  }

  async deleteDocument(id) {
    return this.exclusive(() => {
      if (!this.documents.has(id)) return false;
      const line = Buffer.from(`${JSON.stringify({ op: 'delete', id })}\n`);
      try {
        writeAllAt(this.recordsFd, line, this.recordsSize);
        fdatasyncSync(this.recordsFd);
      } catch (error) {
        try {
          ftruncateSync(this.recordsFd, this.recordsSize);
        } catch {}
        throw error;
      }
      this.recordsSize += line.length;
      this.applyDelete(id);
      this.compactIfWorthIt();
      return true;
    });
  }

  async getDocument(id) {
    const document = this.documents.get(id);
    return document === undefined ? null : describe(document);
  }

  async listDocuments() {
    return [...this.documents.values()]
      .map(describe)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Exact top-k by cosine similarity. Synchronous inside: it sees one state of the store. */
  async search(vector, k) {
    return this.searchSync(vector, k);
  }

  searchSync(vector, k) {
    if (vector.length !== this.dimension) {
      throw new Error(`the query vector has dimension ${vector.length}, the collection ${this.dimension}`);
    }
    const query = normalise(vector);
    const d = this.dimension;
    const data = this.vectors;
    const limit = Math.max(1, Math.min(k, this.liveRows));
    const topScores = new Float64Array(limit).fill(Number.NEGATIVE_INFINITY);
    const topRows = new Int32Array(limit).fill(-1);
    let found = 0;
    for (let row = 0; row < this.rows; row++) {
      if (this.rowDocument[row] === null) continue;
      const offset = row * d;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let j = 0;
      for (; j + 3 < d; j += 4) {
        s0 += data[offset + j] * query[j];
        s1 += data[offset + j + 1] * query[j + 1];
        s2 += data[offset + j + 2] * query[j + 2];
        s3 += data[offset + j + 3] * query[j + 3];
      }
      let score = s0 + s1 + s2 + s3;
      for (; j < d; j++) score += data[offset + j] * query[j];
      if (found === limit && score <= topScores[limit - 1]) continue;
      let at = found < limit ? found++ : limit - 1;
      while (at > 0 && topScores[at - 1] < score) {
        topScores[at] = topScores[at - 1];
        topRows[at] = topRows[at - 1];
        at--;
      }
      topScores[at] = score;
      topRows[at] = row;
    }
    const hits = [];
    for (let i = 0; i < found; i++) {
      const row = topRows[i];
      const document = this.rowDocument[row];
      hits.push({
        document: document.id,
        chunk: this.rowChunk[row],
        score: Math.max(-1, Math.min(1, topScores[i])),
        text: this.rowText[row],
        title: document.title,
        source: document.source,
      });
    }
    return hits;
  }

  compactIfWorthIt() {
    const dead = this.rows - this.liveRows;
    if (dead >= COMPACT_MIN_DEAD_ROWS && dead > this.liveRows) this.compact();
  }

  /** Writes the live rows to the next generation and switches collection.json to it. */
  compact() {
    this.writeGeneration(this.collection.generation + 1, this.lock, (id) => {
      const document = this.documents.get(id);
      const d = this.dimension;
      return this.vectors.subarray(document.first * d, (document.first + document.chunks) * d);
    });
  }

  /**
   * Writes generation `generation` holding every live document with the vectors `rowsOf`
   * gives it (rows x dimension, unit length), makes it current under `lock`, reopens it.
   */
  writeGeneration(generation, lock, rowsOf) {
    const dir = this.generationDir(generation);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const vectorsFd = openSync(join(dir, VECTORS_FILE), 'w', 0o640);
    const recordsFd = openSync(join(dir, RECORDS_FILE), 'w', 0o640);
    try {
      let row = 0;
      for (const document of [...this.documents.values()].sort((a, b) => a.first - b.first)) {
        const rows = rowsOf(document.id);
        const bytes = Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength);
        writeAll(vectorsFd, bytes);
        const chunks = [];
        for (let i = 0; i < document.chunks; i++) chunks.push(this.rowText[document.first + i]);
        const record = {
          op: 'put',
          id: document.id,
          title: document.title,
          source: document.source,
          format: document.format,
          sha256: document.sha256,
          chars: document.chars,
          ingestedAt: document.ingestedAt,
          first: row,
          count: document.chunks,
          chunks,
        };
        writeAll(recordsFd, Buffer.from(`${JSON.stringify(record)}\n`));
        row += document.chunks;
      }
      fdatasyncSync(vectorsFd);
      fdatasyncSync(recordsFd);
    } finally {
      closeSync(vectorsFd);
      closeSync(recordsFd);
    }
    syncDir(dir);
    const collection = { ...this.collection, ...lock, generation, rewrittenAt: new Date().toISOString() };
    writeFileDurably(join(this.dir, COLLECTION_FILE), `${JSON.stringify(collection, null, 2)}\n`);
    syncDir(this.dir);
    // From here the new generation is the collection; the old one is garbage.
    this.closeFiles();
    const fresh = new FileVectorStore(this.dir, collection);
    fresh.replay();
    Object.assign(this, { ...fresh, writeTail: this.writeTail });
    this.removeStaleGenerations();
  }

  closeFiles() {
    for (const fd of [this.vectorsFd, this.recordsFd]) if (fd !== null) closeSync(fd);
    this.vectorsFd = null;
    this.recordsFd = null;
  }

  async close() {
    await this.writeTail;
    this.closeFiles();
  }
}

/**
 * Re-embeds every stored chunk with another model and locks the collection to it.
 * `embed(texts)` returns one vector per text. The old generation stays current until the
 * new one is complete, so an interrupted re-index leaves the old collection as it was.
 */
export async function reindexFileVectorStore({
  dir,
  embeddingModel,
  dimension,
  embed,
  batchSize = 16,
  onProgress = () => {},
}) {
  const store = FileVectorStore.open({ dir, embeddingModel, dimension, ignoreLock: true });
  try {
    const fresh = new Map();
    const total = store.stats().chunks;
    let done = 0;
    for (const document of store.documents.values()) {
      const texts = [];
      for (let i = 0; i < document.chunks; i++) texts.push(store.rowText[document.first + i]);
      const rows = new Float32Array(document.chunks * dimension);
      for (let start = 0; start < texts.length; start += batchSize) {
        const vectors = await embed(texts.slice(start, start + batchSize));
        vectors.forEach((vector, i) => {
          if (vector.length !== dimension) {
            throw new Error(`the runtime returned vectors of dimension ${vector.length}, not ${dimension}`);
          }
          rows.set(normalise(vector), (start + i) * dimension);
        });
        done += vectors.length;
        onProgress(done, total);
      }
      fresh.set(document.id, rows);
    }
    store.writeGeneration(store.collection.generation + 1, { embeddingModel, dimension }, (id) =>
      fresh.get(id),
    );
    return { documents: store.documents.size, chunks: total };
  } finally {
    await store.close();
  }
}

function describe(document) {
  return {
    id: document.id,
    title: document.title,
    source: document.source,
    format: document.format,
    sha256: document.sha256,
    chars: document.chars,
    chunks: document.chunks,
    ingestedAt: document.ingestedAt,
  };
}

function readSyncAll(fd, buffer, position) {
  let offset = 0;
  while (offset < buffer.length) {
    const read = readSyncAt(fd, buffer, offset, position + offset);
    if (read === 0) throw new StoreDamagedError('the vectors file ended early');
    offset += read;
  }
}

function readSyncAt(fd, buffer, offset, position) {
  return readSync(fd, buffer, offset, buffer.length - offset, position);
}

function writeAllAt(fd, buffer, position) {
  let offset = 0;
  while (offset < buffer.length)
    offset += writeSync(fd, buffer, offset, buffer.length - offset, position + offset);
}
