// A VectorStore (see vector-store.mjs) in PostgreSQL with the pgvector extension, through
// the standard `pg` client; for collections larger than the embedded store is meant for,
// kept where a site already backs up and replicates its databases.
//
// Tables per collection, not one table with a collection column: a pgvector HNSW index
// covers one column of one fixed dimension (`vector(1024)`), so collections locked to
// different models cannot share an index; and an ANN index filtered by a collection column
// returns fewer than k rows once the filter drops most of the candidates it found (the
// pgvector README, "Filtering"). A table per collection keeps every search an unfiltered
// index scan, and a re-index a table swap. The layout:
//
//   apertus_collections            one row per collection: name, embedding model, dimension,
//                                  generation, created_at; the lock lives here
//   apertus_documents_<id>         one row per document (its metadata)
//   apertus_chunks_<id>_<gen>      one row per chunk: document, chunk, text, embedding
//                                  vector(dimension), an HNSW index (vector_cosine_ops)
//
// Table names are built from the collection's serial id and generation only, never from
// its name, so no name reaches SQL but as a parameter. Every write runs in one transaction
// under a transaction-level advisory lock on the collection (pg_advisory_xact_lock), so two
// services on one collection, or a re-index and a service, never interleave: a put replaces
// a document whole or not at all, which Qdrant cannot give (see qdrant-store.mjs). Searches
// take no lock: PostgreSQL's MVCC gives them a consistent view.
//
// The lock is mirrored in <data-dir>/collection.json (store 'pgvector'), so an install's
// preflight (rag-service.ts) reads it without a database client. The connection URL, which
// may hold a password, comes from the caller (server.mjs reads it from the environment or
// a file), never from argv or the bundle.

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CollectionLockError, StoreDamagedError } from './vector-store.mjs';

const COLLECTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** The first key of every advisory lock apertus takes: "apRG" read as an int32. */
const ADVISORY_CLASS = 0x61705247;
const INSERT_BATCH = 64;
const POOL_SIZE = 4;
/** HNSW candidates per search; pgvector's default is 40, and a search wants at least k. */
const MIN_EF_SEARCH = 64;
const PGVECTOR_REMEDY =
  'To re-index the stored chunks with the new model, start the service once with --reindex ' +
  '(it re-embeds every chunk into a new table and switches to it in one transaction)';

/** Loads `pg` only when a pgvector store is opened: the embedded store needs no npm package. */
async function loadPg() {
  const module = await import('pg');
  return module.default ?? module;
}

/** pgvector's text form of a vector: '[x,y,...]', refusing what PostgreSQL would store wrongly. */
export function vectorLiteral(vector, dimension) {
  if (vector.length !== dimension) {
    throw new Error(`the vector has dimension ${vector.length}, the collection ${dimension}`);
  }
  const parts = new Array(vector.length);
  for (let i = 0; i < vector.length; i++) {
    const x = Number(vector[i]);
    if (!Number.isFinite(x)) throw new Error('the vector holds a non-finite value');
    parts[i] = String(x);
  }
  return `[${parts.join(',')}]`;
}

function chunksTable(id, generation) {
  return `apertus_chunks_${Number(id)}_${Number(generation)}`;
}

function documentsTable(id) {
  return `apertus_documents_${Number(id)}`;
}

async function inTransaction(pool, collection, task) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [ADVISORY_CLASS, collection]);
    const result = await task(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

async function createSchema(client) {
  await client.query('CREATE EXTENSION IF NOT EXISTS vector');
  await client.query(`CREATE TABLE IF NOT EXISTS apertus_collections (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    embedding_model text NOT NULL,
    dimension integer NOT NULL CHECK (dimension BETWEEN 1 AND 16000),
    generation integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now()
  )`);
}

/** Creates one generation's chunk table with its HNSW index (dimension is an integer, checked). */
async function createChunksTable(client, id, generation, dimension) {
  if (!Number.isInteger(dimension) || dimension < 1 || dimension > 16000) {
    throw new Error(`pgvector indexes dimensions 1 to 16000 (vector type), not ${dimension}`);
  }
  const table = chunksTable(id, generation);
  await client.query(`CREATE TABLE ${table} (
    document text NOT NULL REFERENCES ${documentsTable(id)} (id) ON DELETE CASCADE,
    chunk integer NOT NULL,
    text text NOT NULL,
    embedding vector(${dimension}) NOT NULL,
    PRIMARY KEY (document, chunk)
  )`);
  await client.query(`CREATE INDEX ${table}_hnsw ON ${table} USING hnsw (embedding vector_cosine_ops)`);
}

/**
 * Finds or creates the collection row and its tables, under the collection's advisory lock
 * so two services starting at once create it once.
 */
async function openCollection(pool, { collection, embeddingModel, dimension }) {
  return inTransaction(pool, collection, async (client) => {
    await createSchema(client);
    const found = await client.query(
      'SELECT id, embedding_model, dimension, generation FROM apertus_collections WHERE name = $1',
      [collection],
    );
    if (found.rows.length > 0) {
      const row = found.rows[0];
      return {
        id: row.id,
        embeddingModel: row.embedding_model,
        dimension: row.dimension,
        generation: row.generation,
      };
    }
    const inserted = await client.query(
      'INSERT INTO apertus_collections (name, embedding_model, dimension) VALUES ($1, $2, $3) RETURNING id',
      [collection, embeddingModel, dimension],
    );
    const id = inserted.rows[0].id;
    await client.query(`CREATE TABLE ${documentsTable(id)} (
      id text PRIMARY KEY,
      title text,
      source text,
      format text NOT NULL,
      sha256 text,
      chars integer,
      chunks integer NOT NULL,
      ingested_at timestamptz NOT NULL
    )`);
    await createChunksTable(client, id, 1, dimension);
    return { id, embeddingModel, dimension, generation: 1 };
  });
}

function writeMirror(dir, { url, collection, embeddingModel, dimension, generation }) {
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  const file = join(dir, 'collection.json');
  const temp = `${file}.tmp`;
  // The URL may hold a password: only its host and port go into the mirror.
  const where = (() => {
    try {
      const parsed = new URL(url);
      return `${parsed.hostname}:${parsed.port || 5432}`;
    } catch {
      return 'unknown';
    }
  })();
  writeFileSync(
    temp,
    `${JSON.stringify({ format: 'apertus-rag-collection', formatVersion: 1, store: 'pgvector', server: where, collection, embeddingModel, dimension, generation, updatedAt: new Date().toISOString() }, null, 2)}\n`,
    { mode: 0o640 },
  );
  renameSync(temp, file);
}

function checkMirror(dir, collection) {
  const file = join(dir, 'collection.json');
  if (!existsSync(file)) return;
  let mirror;
  try {
    mirror = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new StoreDamagedError(`${file} is not valid JSON (${error.message})`);
  }
  if (mirror.store !== 'pgvector' || mirror.collection !== collection) {
    throw new StoreDamagedError(
      `${file} describes a ${mirror.store ?? 'file'} collection${mirror.collection ? ` "${mirror.collection}"` : ''}, not pgvector collection "${collection}"; use another --data-dir`,
    );
  }
}

export class PgvectorStore {
  /**
   * Opens (creating where missing) the collection `collection` in the database at `url`,
   * locked to this model and dimension. With `ignoreLock`, one locked to another model
   * opens anyway (for re-indexing only).
   */
  static async open({
    dir,
    url,
    collection,
    embeddingModel,
    dimension,
    ignoreLock = false,
    poolSize = POOL_SIZE,
  }) {
    if (!COLLECTION_NAME.test(collection ?? '')) {
      throw new StoreDamagedError(
        `the pgvector collection name must be 1-64 letters, digits, _ or -, not ${JSON.stringify(collection)}`,
      );
    }
    checkMirror(dir, collection);
    const pg = await loadPg();
    const pool = new pg.Pool({ connectionString: url, max: poolSize, connectionTimeoutMillis: 30_000 });
    // An idle client that loses its server must not crash the service; the next query reports it.
    pool.on('error', () => {});
    let row;
    try {
      row = await openCollection(pool, { collection, embeddingModel, dimension });
    } catch (error) {
      await pool.end().catch(() => {});
      throw new Error(`pgvector at ${describeUrl(url)}: ${error.message}`);
    }
    if (!ignoreLock && (row.embeddingModel !== embeddingModel || row.dimension !== dimension)) {
      await pool.end().catch(() => {});
      throw new CollectionLockError(
        `"${collection}" in pgvector at ${describeUrl(url)}`,
        { embeddingModel: row.embeddingModel, dimension: row.dimension },
        { embeddingModel, dimension },
        PGVECTOR_REMEDY,
      );
    }
    const store = new PgvectorStore({ pool, url, collection, row });
    if (!ignoreLock) writeMirror(dir, { url, collection, ...store.lock, generation: row.generation });
    await store.refreshStats();
    return store;
  }

  constructor({ pool, url, collection, row }) {
    this.kind = 'pgvector';
    this.pool = pool;
    this.url = url;
    this.collection = collection;
    this.id = row.id;
    this.generation = row.generation;
    this.lock = { embeddingModel: row.embeddingModel, dimension: row.dimension };
    this.counts = { documents: 0, chunks: 0 };
  }

  get chunks() {
    return chunksTable(this.id, this.generation);
  }

  get documents() {
    return documentsTable(this.id);
  }

  async refreshStats(client = this.pool) {
    const result = await client.query(
      `SELECT (SELECT count(*) FROM ${this.documents})::int AS documents, (SELECT count(*) FROM ${this.chunks})::int AS chunks`,
    );
    this.counts = result.rows[0];
  }

  stats() {
    return this.counts;
  }

  /** Runs `task` in a transaction under the collection's advisory lock, on the current generation. */
  async write(task) {
    return inTransaction(this.pool, this.collection, async (client) => {
      // A re-index by another process may have switched generations since this store opened.
      const current = await client.query(
        'SELECT generation, embedding_model, dimension FROM apertus_collections WHERE id = $1',
        [this.id],
      );
      const row = current.rows[0];
      if (!row) throw new StoreDamagedError(`the pgvector collection "${this.collection}" was dropped`);
      if (row.embedding_model !== this.lock.embeddingModel || row.dimension !== this.lock.dimension) {
        throw new CollectionLockError(
          `"${this.collection}" in pgvector at ${describeUrl(this.url)}`,
          { embeddingModel: row.embedding_model, dimension: row.dimension },
          this.lock,
          'It was re-indexed while this service ran; restart the service with the new model',
        );
      }
      this.generation = row.generation;
      const result = await task(client);
      await this.refreshStats(client);
      return result;
    });
  }

  async putDocument(document, chunks, vectors) {
    if (chunks.length !== vectors.length) throw new Error('one vector per chunk is needed');
    const literals = vectors.map((vector, i) => {
      try {
        return vectorLiteral(vector, this.lock.dimension);
      } catch (error) {
        throw new Error(`chunk ${i}: ${error.message}`);
      }
    });
    return this.write(async (client) => {
      const removed = await client.query(`DELETE FROM ${this.documents} WHERE id = $1`, [document.id]);
      await client.query(
        `INSERT INTO ${this.documents} (id, title, source, format, sha256, chars, chunks, ingested_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now())`,
        [
          document.id,
          document.title ?? null,
          document.source ?? null,
          document.format ?? 'text',
          document.sha256 ?? null,
          document.chars ?? null,
          chunks.length,
        ],
      );
      for (let start = 0; start < chunks.length; start += INSERT_BATCH) {
        const values = [];
        const params = [];
        for (let i = start; i < Math.min(chunks.length, start + INSERT_BATCH); i++) {
          const n = params.length;
          values.push(`($${n + 1}, $${n + 2}, $${n + 3}, $${n + 4}::vector)`);
          params.push(document.id, i, chunks[i], literals[i]);
        }
        await client.query(
          `INSERT INTO ${this.chunks} (document, chunk, text, embedding) VALUES ${values.join(', ')}`,
          params,
        );
      }
      return { replaced: removed.rowCount > 0 };
    });
  }

  async deleteDocument(id) {
    return this.write(async (client) => {
      const removed = await client.query(`DELETE FROM ${this.documents} WHERE id = $1`, [id]);
      return removed.rowCount > 0;
    });
  }

  async getDocument(id) {
    const result = await this.pool.query(`SELECT * FROM ${this.documents} WHERE id = $1`, [id]);
    return result.rows[0] ? describe(result.rows[0]) : null;
  }

  async listDocuments() {
    const result = await this.pool.query(`SELECT * FROM ${this.documents} ORDER BY id COLLATE "C"`);
    return result.rows.map(describe);
  }

  async search(vector, k) {
    const literal = vectorLiteral(vector, this.lock.dimension);
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`SET LOCAL hnsw.ef_search = ${Math.max(MIN_EF_SEARCH, Math.trunc(k))}`);
      const result = await client.query(
        `SELECT c.document, c.chunk, c.text, d.title, d.source, 1 - (c.embedding <=> $1::vector) AS score
           FROM ${this.chunks} c JOIN ${this.documents} d ON d.id = c.document
          ORDER BY c.embedding <=> $1::vector LIMIT $2`,
        [literal, k],
      );
      await client.query('COMMIT');
      return result.rows.map((row) => ({
        document: row.document,
        chunk: row.chunk,
        score: Number(row.score),
        text: row.text,
        title: row.title,
        source: row.source,
      }));
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  async close() {
    await this.pool.end();
  }
}

function describe(row) {
  return {
    id: row.id,
    title: row.title,
    source: row.source,
    format: row.format,
    sha256: row.sha256,
    chars: row.chars,
    chunks: row.chunks,
    ingestedAt: new Date(row.ingested_at).toISOString(),
  };
}

/** host:port of a connection URL, for messages: never its user or password. */
export function describeUrl(url) {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || 5432}${parsed.pathname}`;
  } catch {
    return '(an unparsable URL)';
  }
}

/**
 * Re-embeds every chunk of the collection with another model into a new generation's
 * table, then switches the collection row to it and drops the old table in one
 * transaction: an interrupted re-index leaves the collection as it was. The whole run
 * holds the collection's advisory lock, so no service writes meanwhile.
 */
export async function reindexPgvectorStore({
  dir,
  url,
  collection,
  embeddingModel,
  dimension,
  embed,
  batchSize = 16,
  onProgress = () => {},
}) {
  const store = await PgvectorStore.open({
    dir,
    url,
    collection,
    embeddingModel,
    dimension,
    ignoreLock: true,
  });
  try {
    const result = await inTransaction(store.pool, collection, async (client) => {
      const row = (await client.query('SELECT generation FROM apertus_collections WHERE id = $1', [store.id]))
        .rows[0];
      const from = chunksTable(store.id, row.generation);
      const next = row.generation + 1;
      await client.query(`DROP TABLE IF EXISTS ${chunksTable(store.id, next)}`);
      await createChunksTable(client, store.id, next, dimension);
      const total = (await client.query(`SELECT count(*)::int AS n FROM ${from}`)).rows[0].n;
      let done = 0;
      // Keyset pages, so memory holds one batch, not the collection.
      let after = null;
      for (;;) {
        const page = await client.query(
          after === null
            ? `SELECT document, chunk, text FROM ${from} ORDER BY document, chunk LIMIT $1`
            : `SELECT document, chunk, text FROM ${from} WHERE (document, chunk) > ($2, $3) ORDER BY document, chunk LIMIT $1`,
          after === null ? [batchSize] : [batchSize, after.document, after.chunk],
        );
        if (page.rows.length === 0) break;
        const vectors = await embed(page.rows.map((r) => r.text));
        const values = [];
        const params = [];
        page.rows.forEach((r, i) => {
          const n = params.length;
          values.push(`($${n + 1}, $${n + 2}, $${n + 3}, $${n + 4}::vector)`);
          params.push(r.document, r.chunk, r.text, vectorLiteral(vectors[i] ?? [], dimension));
        });
        await client.query(
          `INSERT INTO ${chunksTable(store.id, next)} (document, chunk, text, embedding) VALUES ${values.join(', ')}`,
          params,
        );
        done += page.rows.length;
        onProgress(done, total);
        after = page.rows[page.rows.length - 1];
      }
      await client.query(
        'UPDATE apertus_collections SET embedding_model = $1, dimension = $2, generation = $3 WHERE id = $4',
        [embeddingModel, dimension, next, store.id],
      );
      await client.query(`DROP TABLE ${from}`);
      const documents = (await client.query(`SELECT count(*)::int AS n FROM ${documentsTable(store.id)}`))
        .rows[0].n;
      return { documents, chunks: total, generation: next };
    });
    writeMirror(dir, { url, collection, embeddingModel, dimension, generation: result.generation });
    return { documents: result.documents, chunks: result.chunks };
  } finally {
    await store.close();
  }
}
