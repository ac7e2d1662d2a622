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
// The embedded store ('file'). Small collections are searched by an exact scan over a
// Float32Array: about 1 ms per million rows x dimensions on one core, never a wrong
// neighbour, nothing native. From ANN_MIN_CELLS on, an HNSW index (ann-index.mjs: usearch,
// int8 vectors, on a worker thread so searches never block the event loop) proposes
// candidates and the store re-ranks them by the exact float32 score. The index is a cache
// of the vectors, never the record: it is rebuilt from them whenever it is missing, stale,
// damaged or not this collection's, and when usearch cannot be loaded the store stays exact.
// sqlite-vec and LanceDB were passed over: they would hold the data itself in a native
// format; usearch ships one prebuilt N-API binary per platform in its npm package, which
// travels in the runtime tree like node-llama-cpp's. Durability:
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
// of an exact collection lives in memory as one Float32Array (rows x dimension x 4 bytes),
// the file is only read at open. Once a collection searches through the ANN index, the
// float32 rows stay in the file: the index holds int8 copies (a quarter of their size),
// and the re-rank reads its 10 x k candidate rows from the file (pread, served from the
// page cache), so the process holds about a third of the raw vectors, not 1.3 times them.
//
//   <dir>/gen-<N>/index.usearch     the ANN index over rows [0, rows) of this generation
//   <dir>/gen-<N>/index.json        { rows, bytes, sha256, parameters }, written after it
//
// Both are written temp file, fsync, rename, index first: a crash between leaves a record
// whose digest does not match. At open the index is loaded only when its record matches
// this generation and parameters, its size and digest match, and sampled rows find
// themselves in it; rows deleted since it was saved are removed from it and rows added
// since are added. It is saved on close and when a fifth of it changed. A compaction
// renumbers the rows, so the new generation starts without an index and builds its own;
// meanwhile, and for rows not yet added, searches scan exactly.

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
import { ANN_PARAMS, AnnIndex } from './ann-index.mjs';

const FORMAT = 'apertus-rag-collection';
const FORMAT_VERSION = 1;
const COLLECTION_FILE = 'collection.json';
const VECTORS_FILE = 'vectors.f32';
const RECORDS_FILE = 'records.jsonl';
/** Compact when tombstoned rows are at least this many and outnumber the live ones. */
const COMPACT_MIN_DEAD_ROWS = 256;
const INDEX_FILE = 'index.usearch';
const INDEX_RECORD = 'index.json';
const INDEX_FORMAT = 'apertus-rag-ann-index';
/**
 * Collections of at least this many rows x dimensions search through the ANN index. Below,
 * the exact scan takes at most about 5 ms (measured on the 2-core build machine: 4,096 x
 * 1024 in 5.3 ms, 12,288 x 1024 in 12 ms at best; about 1 ms per million cells), is never
 * approximate, and needs no worker or index files; above, its cost grows with every row.
 */
export const ANN_MIN_CELLS = 4096 * 1024;
/** Rows read from the file at a time by an exact scan of rows that are not in memory (16 MiB at 1024). */
const SCAN_BLOCK_ROWS = 4096;
/** Rows per add sent to the index worker: searches queued meanwhile run between batches. */
const ANN_ADD_BATCH = 2048;
/** The index is saved when this share of its rows is new or removed since the last save. */
const ANN_SAVE_SHARE = 0.2;
/** Rows of the saved index searched for themselves at open: the index is never trusted blindly. */
const ANN_SELF_CHECKS = 16;

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
  /**
   * `index`: 'auto' (the ANN index once the collection has `indexMinCells` rows x dimensions)
   * or 'exact'; `indexSearch`: { expansionSearch, rerank } over ANN_PARAMS (tests raise them).
   */
  static open({
    dir,
    embeddingModel,
    dimension,
    ignoreLock = false,
    index = 'auto',
    indexMinCells = ANN_MIN_CELLS,
    indexSearch = {},
  }) {
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
    const { expansionSearch = ANN_PARAMS.expansionSearch, rerank = ANN_PARAMS.rerank } = indexSearch;
    store.indexOptions = {
      mode: index,
      minCells: indexMinCells,
      params: { ...ANN_PARAMS, expansionSearch, rerank },
    };
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
    store.startIndexIfWorthIt();
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
    /** The float32 rows, while they are kept in memory (see keepsRowsInMemory). */
    this.vectors = new Float32Array(0);
    this.rowsInMemory = true;
    /** One row read from the file, for the re-rank. */
    this.scratchRow = null;
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
    this.indexOptions = { mode: 'exact', minCells: ANN_MIN_CELLS, params: ANN_PARAMS };
    this.resetIndexState();
  }

  /** No index: every search is an exact scan. */
  resetIndexState() {
    /** The ANN index, once started; null while exact. */
    this.ann = null;
    /** Rows [0, annRows) have been sent to the index (live ones added, dead ones not). */
    this.annRows = 0;
    /** Bumped whenever the index is dropped, so work begun on an older one is discarded. */
    this.annEpoch = (this.annEpoch ?? 0) + 1;
    /** annRows and removals at the last save; the index is saved again once enough changed. */
    this.annSavedRows = 0;
    this.annChanges = 0;
    this.annStarting = null;
    this.annCatchUp = null;
    this.annError = null;
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

  /**
   * Whether `rows` rows stay in memory: always for an exact collection, and below the size
   * at which the ANN index takes over; from there the index's int8 copies serve the search
   * and the float32 rows are read from the file for the re-rank.
   */
  keepsRowsInMemory(rows) {
    return this.indexOptions.mode === 'exact' || rows * this.dimension < this.indexOptions.minCells;
  }

  /** Lets go of the in-memory rows: from here they are read from vectors.f32. */
  leaveRowsOnDisk() {
    this.vectors = new Float32Array(0);
    this.capacity = 0;
    this.rowsInMemory = false;
  }

  /** Rows [first, first + count) as float32, from memory or from vectors.f32, into `into`. */
  readRows(first, count, into = new Float32Array(count * this.dimension)) {
    const d = this.dimension;
    if (this.rowsInMemory) {
      into.set(this.vectors.subarray(first * d, (first + count) * d));
    } else {
      readSyncAll(this.vectorsFd, Buffer.from(into.buffer, into.byteOffset, count * d * 4), first * d * 4);
    }
    return into;
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
        if (this.rowsInMemory && !this.keepsRowsInMemory(this.rows + record.count)) this.leaveRowsOnDisk();
        if (this.rowsInMemory) {
          this.ensureCapacity(this.rows + record.count);
          const bytes = Buffer.alloc(record.count * rowBytes);
          readSyncAll(this.vectorsFd, bytes, this.rows * rowBytes);
          this.vectors.set(
            new Float32Array(bytes.buffer, bytes.byteOffset, record.count * this.dimension),
            this.rows * this.dimension,
          );
        }
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
    this.forgetIndexedRows(document.first, Math.min(document.first + document.chunks, this.annRows));
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
    // An index save a crash interrupted.
    for (const entry of readdirSync(this.generationDir())) {
      if (entry.endsWith('.tmp')) rmSync(join(this.generationDir(), entry), { force: true });
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
      if (this.rowsInMemory && !this.keepsRowsInMemory(first + chunks.length)) this.leaveRowsOnDisk();
      if (this.rowsInMemory) {
        this.ensureCapacity(first + chunks.length);
        this.vectors.set(view, first * this.dimension);
      }
      this.applyPut(record);
      this.compactIfWorthIt();
      this.startIndexIfWorthIt();
      if (this.ann !== null) this.catchUpIndex();
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

  /**
   * Top-k by cosine similarity. Exact for small collections: synchronous inside, it sees one
   * state of the store. With the index: its candidates for the rows it holds, plus an exact
   * scan of rows not yet sent to it, all re-ranked by the exact score; rows deleted while the
   * index searched are dropped, rows added meanwhile are in the scan.
   */
  async search(vector, k) {
    if (this.annStarting !== null) await this.annStarting;
    if (this.ann === null || this.annRows === 0) return this.searchSync(vector, k);
    if (vector.length !== this.dimension) {
      throw new Error(`the query vector has dimension ${vector.length}, the collection ${this.dimension}`);
    }
    const query = normalise(vector);
    const epoch = this.annEpoch;
    const covered = this.annRows;
    let candidates;
    try {
      candidates = await this.ann.search(query, Math.max(1, k) * this.indexOptions.params.rerank);
    } catch (error) {
      // An index dropped meanwhile (compaction, close) is no failure of the current one.
      if (epoch === this.annEpoch) this.dropIndex(error);
      return this.searchSync(vector, k);
    }
    // A compaction renumbered the rows while the index searched.
    if (epoch !== this.annEpoch) return this.searchSync(vector, k);
    const top = new TopRows(Math.max(1, Math.min(k, this.liveRows)));
    for (const row of candidates) {
      if (row < this.rows && this.rowDocument[row] !== null) top.offer(this.score(row, query), row);
    }
    for (let row = covered; row < this.rows; row++) {
      if (this.rowDocument[row] !== null) top.offer(this.score(row, query), row);
    }
    return this.hitsOf(top);
  }

  /** The exact dot product of row `row` with a unit query. */
  score(row, query) {
    if (this.rowsInMemory) return dot(this.vectors, row * this.dimension, query);
    this.scratchRow ??= new Float32Array(this.dimension);
    return dot(this.readRows(row, 1, this.scratchRow), 0, query);
  }

  hitsOf(top) {
    const hits = [];
    for (let i = 0; i < top.found; i++) {
      const row = top.rows[i];
      const document = this.rowDocument[row];
      hits.push({
        document: document.id,
        chunk: this.rowChunk[row],
        score: Math.max(-1, Math.min(1, top.scores[i])),
        text: this.rowText[row],
        title: document.title,
        source: document.source,
      });
    }
    return hits;
  }

  /** The exact scan over every live row. */
  searchSync(vector, k) {
    if (vector.length !== this.dimension) {
      throw new Error(`the query vector has dimension ${vector.length}, the collection ${this.dimension}`);
    }
    const query = normalise(vector);
    const top = new TopRows(Math.max(1, Math.min(k, this.liveRows)));
    const d = this.dimension;
    // Rows on disk are read a block at a time; rows in memory are scored where they lie.
    const block = this.rowsInMemory ? this.rows : SCAN_BLOCK_ROWS;
    const buffer = this.rowsInMemory ? this.vectors : new Float32Array(Math.min(block, this.rows) * d);
    for (let start = 0; start < this.rows; start += block) {
      const count = Math.min(block, this.rows - start);
      if (!this.rowsInMemory) this.readRows(start, count, buffer.subarray(0, count * d));
      for (let i = 0; i < count; i++) {
        const row = start + i;
        if (this.rowDocument[row] === null) continue;
        const score = dot(buffer, i * d, query);
        if (top.found === top.limit && score <= top.scores[top.limit - 1]) continue;
        top.offer(score, row);
      }
    }
    return this.hitsOf(top);
  }

  /** Starts the index once the collection is large enough for it (never in 'exact' mode). */
  startIndexIfWorthIt() {
    if (this.indexOptions.mode === 'exact' || this.ann !== null || this.annStarting !== null) return;
    if (this.annError !== null) return;
    if (this.liveRows * this.dimension < this.indexOptions.minCells) return;
    const epoch = this.annEpoch;
    this.annStarting = this.attachIndex(epoch)
      .catch((error) => {
        if (epoch === this.annEpoch) this.dropIndex(error);
      })
      .finally(() => {
        if (epoch === this.annEpoch) this.annStarting = null;
      });
  }

  /**
   * Starts the worker and loads the saved index when its record matches this generation,
   * its digest matches the file, and its rows find themselves; otherwise the index is
   * rebuilt from the vectors. Rows the saved index lacks are added; rows deleted since, removed.
   */
  async attachIndex(epoch) {
    const ann = await AnnIndex.start(this.dimension, this.indexOptions.params);
    if (epoch !== this.annEpoch) {
      await ann.close();
      return;
    }
    const loaded = await this.loadSavedIndex(ann).catch(async (error) => {
      this.indexNote = `the saved index was not used (${error.message}); rebuilding it from the vectors`;
      await ann.reset();
      return 0;
    });
    if (epoch !== this.annEpoch) {
      await ann.close();
      return;
    }
    this.ann = ann;
    this.annRows = loaded;
    this.annSavedRows = loaded;
    this.annChanges = 0;
    if (loaded > 0) {
      const dead = [];
      for (let row = 0; row < loaded; row++) if (this.rowDocument[row] === null) dead.push(row);
      if (dead.length > 0) await ann.remove(Uint32Array.from(dead));
    }
    this.catchUpIndex();
  }

  /** Loads gen-N/index.usearch into `ann`; resolves to the rows it covers, 0 when there is none. */
  async loadSavedIndex(ann) {
    const recordPath = join(this.generationDir(), INDEX_RECORD);
    if (!existsSync(recordPath)) return 0;
    const record = JSON.parse(readFileSync(recordPath, 'utf8'));
    const expected = { format: INDEX_FORMAT, dimension: this.dimension, ...indexParams() };
    for (const [key, value] of Object.entries(expected)) {
      if (record[key] !== value) throw new Error(`${recordPath}: ${key} is ${record[key]}, not ${value}`);
    }
    if (!Number.isInteger(record.rows) || record.rows < 1 || record.rows > this.rows) {
      throw new Error(`${recordPath} covers ${record.rows} rows, the collection has ${this.rows}`);
    }
    await ann.load(join(this.generationDir(), INDEX_FILE), record.bytes, record.sha256);
    // Live rows spread over the saved range must find themselves among the candidates.
    const live = [];
    const step = Math.max(1, Math.floor(record.rows / (ANN_SELF_CHECKS * 4)));
    for (let row = 0; row < record.rows && live.length < ANN_SELF_CHECKS; row += step) {
      if (this.rowDocument[row] !== null) live.push(row);
    }
    let found = 0;
    for (const row of live) {
      const vector = this.readRows(row, 1);
      const candidates = await ann.search(vector, 10);
      if (candidates.includes(row)) found += 1;
    }
    if (found < Math.ceil(live.length * 0.9)) {
      throw new Error(`only ${found} of ${live.length} sampled rows found themselves in it`);
    }
    return record.rows;
  }

  /** Sends rows not yet in the index, in batches; one run at a time. */
  catchUpIndex() {
    if (this.annCatchUp !== null) return this.annCatchUp;
    const epoch = this.annEpoch;
    this.annCatchUp = (async () => {
      while (epoch === this.annEpoch && this.ann !== null && this.annRows < this.rows) {
        const from = this.annRows;
        const to = Math.min(this.rows, from + ANN_ADD_BATCH);
        const rows = [];
        for (let row = from; row < to; row++) if (this.rowDocument[row] !== null) rows.push(row);
        const d = this.dimension;
        const block = this.readRows(from, to - from);
        const vectors = new Float32Array(rows.length * d);
        rows.forEach((row, i) => {
          vectors.set(block.subarray((row - from) * d, (row - from + 1) * d), i * d);
        });
        // Set before the add is answered: a search sent after it is answered after it too.
        this.annRows = to;
        await this.ann.add(Uint32Array.from(rows), vectors);
      }
      if (epoch === this.annEpoch) await this.saveIndexIfWorthIt();
    })()
      .catch((error) => {
        if (epoch === this.annEpoch) this.dropIndex(error);
      })
      .finally(() => {
        if (epoch === this.annEpoch) this.annCatchUp = null;
      });
    return this.annCatchUp;
  }

  /** Rows [from, to) of the index were deleted: the index stops proposing them. */
  forgetIndexedRows(from, to) {
    if (this.ann === null || to <= from) return;
    const rows = new Uint32Array(to - from);
    for (let i = 0; i < rows.length; i++) rows[i] = from + i;
    this.annChanges += rows.length;
    const epoch = this.annEpoch;
    this.ann.remove(rows).catch((error) => {
      if (epoch === this.annEpoch) this.dropIndex(error);
    });
  }

  async saveIndexIfWorthIt() {
    const changed = this.annRows - this.annSavedRows + this.annChanges;
    if (this.ann === null || changed === 0 || changed < this.annRows * ANN_SAVE_SHARE) return;
    await this.exclusive(() => this.saveIndex());
  }

  /**
   * Saves the index as gen-N/index.usearch (temp file, fsync, rename) and then its record
   * index.json with the rows it covers, its size and digest (temp file, fsync, rename). A
   * crash between the two leaves a record whose digest does not match: the index is rebuilt.
   */
  async saveIndex() {
    if (this.ann === null) return;
    const epoch = this.annEpoch;
    const rows = this.annRows;
    const changes = this.annChanges;
    const dir = this.generationDir();
    const { bytes, sha256 } = await this.ann.save(join(dir, INDEX_FILE));
    if (epoch !== this.annEpoch) return;
    const record = { format: INDEX_FORMAT, dimension: this.dimension, ...indexParams(), rows, bytes, sha256 };
    writeFileDurably(
      join(dir, INDEX_RECORD),
      `${JSON.stringify({ ...record, savedAt: new Date().toISOString() }, null, 2)}\n`,
    );
    syncDir(dir);
    this.annSavedRows = rows;
    this.annChanges -= changes;
  }

  /** Resolves once the index (if any) holds every row: for benchmarks and tests. */
  async indexReady() {
    if (this.annStarting !== null) await this.annStarting;
    while (this.annCatchUp !== null) await this.annCatchUp;
    return { indexed: this.ann !== null, rows: this.annRows, note: this.indexNote ?? null };
  }

  /** Back to exact search: after a failure (kept, so it is not retried) or a compaction. */
  dropIndex(error = null) {
    const ann = this.ann;
    const options = this.indexOptions;
    this.resetIndexState();
    this.indexOptions = options;
    if (error !== null) {
      this.annError = error;
      this.indexNote = `the ANN index failed (${error.message}); searching exactly`;
    }
    if (ann !== null) void ann.close();
  }

  compactIfWorthIt() {
    const dead = this.rows - this.liveRows;
    if (dead >= COMPACT_MIN_DEAD_ROWS && dead > this.liveRows) this.compact();
  }

  /** Writes the live rows to the next generation and switches collection.json to it. */
  compact() {
    this.writeGeneration(this.collection.generation + 1, this.lock, (id) => {
      const document = this.documents.get(id);
      return this.readRows(document.first, document.chunks);
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
    // Row numbers change: the index of the old generation proposes the wrong rows.
    this.dropIndex();
    const fresh = new FileVectorStore(this.dir, collection);
    fresh.indexOptions = this.indexOptions;
    fresh.replay();
    const { writeTail, indexOptions, annEpoch } = this;
    Object.assign(this, { ...fresh, writeTail, indexOptions, annEpoch });
    this.removeStaleGenerations();
    this.startIndexIfWorthIt();
  }

  closeFiles() {
    for (const fd of [this.vectorsFd, this.recordsFd]) if (fd !== null) closeSync(fd);
    this.vectorsFd = null;
    this.recordsFd = null;
  }

  async close() {
    await this.writeTail;
    if (this.annStarting !== null) await this.annStarting;
    if (this.annCatchUp !== null) await this.annCatchUp;
    if (this.ann !== null) {
      if (this.annRows !== this.annSavedRows || this.annChanges > 0) {
        await this.saveIndex().catch(() => {});
      }
      this.dropIndex();
    }
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
  const store = FileVectorStore.open({ dir, embeddingModel, dimension, ignoreLock: true, index: 'exact' });
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

/** What a saved index must have been built with to be loaded. */
function indexParams() {
  return {
    library: ANN_PARAMS.library,
    quantization: ANN_PARAMS.quantization,
    connectivity: ANN_PARAMS.connectivity,
    expansionAdd: ANN_PARAMS.expansionAdd,
  };
}

/** The best `limit` rows seen so far, best first. */
class TopRows {
  constructor(limit) {
    this.limit = limit;
    this.scores = new Float64Array(limit).fill(Number.NEGATIVE_INFINITY);
    this.rows = new Int32Array(limit).fill(-1);
    this.found = 0;
  }

  offer(score, row) {
    const limit = this.limit;
    if (this.found === limit && score <= this.scores[limit - 1]) return;
    let at = this.found < limit ? this.found++ : limit - 1;
    while (at > 0 && this.scores[at - 1] < score) {
      this.scores[at] = this.scores[at - 1];
      this.rows[at] = this.rows[at - 1];
      at--;
    }
    this.scores[at] = score;
    this.rows[at] = row;
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

/** The dot product of `query` with the row that starts at `offset` in `data`. */
function dot(data, offset, query) {
  const d = query.length;
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
  return score;
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
