// A VectorStore (see vector-store.mjs) over Qdrant's REST API, for collections larger than
// the embedded store is meant for. Tested against Qdrant's documented REST contract
// (test/unit/rag-qdrant-contract.test.ts: every request checked against the v1.15 reference,
// every response in its documented shape), never against a live Qdrant: none is reachable
// from the machines the tests run on.
//
// One Qdrant point per chunk, its id a UUID derived from "<document>#<chunk>", its payload
// { document, chunk, text, title, source, format, sha256, chars, chunks, ingestedAt }.
// Cosine distance; Qdrant normalises vectors itself. Payload indexes on `document` and
// `chunk` keep deletes and listings cheap.
//
// The lock: Qdrant keeps no free-form collection metadata in every version we may meet, so
// the lock lives in <data-dir>/collection.json as for the embedded store (with `store:
// 'qdrant'`, the URL and the collection name), and the Qdrant collection's vector size
// must match it. A put of an existing id deletes its points and then upserts the new ones:
// between the two calls a search may miss that document (Qdrant has no transaction).

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { CollectionLockError, StoreDamagedError } from './vector-store.mjs';

const UPSERT_BATCH = 128;
const QDRANT_REMEDY =
  'Re-indexing in place is for the embedded store only: with Qdrant, start the service with a new ' +
  '--qdrant-collection and a new --data-dir, and ingest the documents again';
const SCROLL_PAGE = 256;

function pointId(document, chunk) {
  const hex = createHash('sha256').update(`${document}#${chunk}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

export class QdrantVectorStore {
  /**
   * Opens (creating where missing) the Qdrant collection `collection` at `url`, locked to
   * this model and dimension through <dir>/collection.json.
   */
  static async open({
    dir,
    url,
    collection,
    embeddingModel,
    dimension,
    apiKey = process.env.QDRANT_API_KEY,
  }) {
    const store = new QdrantVectorStore({ url, collection, apiKey, dimension, embeddingModel });
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    const lockFile = join(dir, 'collection.json');
    if (existsSync(lockFile)) {
      const lock = JSON.parse(readFileSync(lockFile, 'utf8'));
      if (lock.store !== 'qdrant' || lock.collection !== collection) {
        throw new StoreDamagedError(
          `${lockFile} describes a ${lock.store ?? 'file'} collection${lock.collection ? ` "${lock.collection}"` : ''}, not Qdrant collection "${collection}"; use another --data-dir`,
        );
      }
      if (lock.embeddingModel !== embeddingModel || lock.dimension !== dimension) {
        throw new CollectionLockError(
          `in Qdrant collection "${collection}" at ${url}`,
          { embeddingModel: lock.embeddingModel, dimension: lock.dimension },
          { embeddingModel, dimension },
          QDRANT_REMEDY,
        );
      }
    }
    const existing = await store.call(
      'GET',
      `/collections/${encodeURIComponent(collection)}`,
      undefined,
      [200, 404],
    );
    if (existing.status === 404) {
      await store.call('PUT', `/collections/${encodeURIComponent(collection)}`, {
        vectors: { size: dimension, distance: 'Cosine' },
      });
      for (const [field, schema] of [
        ['document', 'keyword'],
        ['chunk', 'integer'],
      ]) {
        await store.call('PUT', `/collections/${encodeURIComponent(collection)}/index?wait=true`, {
          field_name: field,
          field_schema: schema,
        });
      }
    } else {
      const size = existing.body?.result?.config?.params?.vectors?.size;
      if (size !== dimension) {
        throw new CollectionLockError(
          `in Qdrant collection "${collection}" at ${url}`,
          { embeddingModel: '(unknown: the collection was not created by apertus)', dimension: size },
          { embeddingModel, dimension },
          QDRANT_REMEDY,
        );
      }
    }
    if (!existsSync(lockFile)) {
      const temp = `${lockFile}.tmp`;
      writeFileSync(
        temp,
        `${JSON.stringify({ format: 'apertus-rag-collection', formatVersion: 1, store: 'qdrant', url, collection, embeddingModel, dimension, createdAt: new Date().toISOString() }, null, 2)}\n`,
      );
      renameSync(temp, lockFile);
    }
    await store.refreshStats();
    return store;
  }

  constructor({ url, collection, apiKey, dimension, embeddingModel }) {
    this.kind = 'qdrant';
    this.base = new URL(url);
    this.collection = collection;
    this.path = `/collections/${encodeURIComponent(collection)}`;
    this.apiKey = apiKey;
    this.lock = { embeddingModel, dimension };
    this.counts = { documents: 0, chunks: 0 };
  }

  call(method, path, body, okStatuses = [200]) {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const send = this.base.protocol === 'https:' ? httpsRequest : request;
    return new Promise((resolve, reject) => {
      const req = send(
        {
          host: this.base.hostname,
          port: this.base.port || (this.base.protocol === 'https:' ? 443 : 80),
          method,
          path,
          agent: false,
          headers: {
            accept: 'application/json',
            ...(this.apiKey ? { 'api-key': this.apiKey } : {}),
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          },
          timeout: 60_000,
        },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed = null;
            try {
              parsed = JSON.parse(text);
            } catch {}
            if (!okStatuses.includes(res.statusCode)) {
              reject(
                new Error(`Qdrant ${method} ${path} answered HTTP ${res.statusCode}: ${text.slice(0, 300)}`),
              );
            } else resolve({ status: res.statusCode, body: parsed });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`Qdrant ${method} ${path} timed out`)));
      req.on('error', (error) =>
        reject(new Error(`Qdrant at ${this.base.origin} cannot be reached: ${error.message}`)),
      );
      req.end(payload);
    });
  }

  async count(filter) {
    const response = await this.call('POST', `${this.path}/points/count`, {
      exact: true,
      ...(filter ? { filter } : {}),
    });
    return response.body?.result?.count ?? 0;
  }

  async refreshStats() {
    this.counts = {
      chunks: await this.count(),
      documents: await this.count({ must: [{ key: 'chunk', match: { value: 0 } }] }),
    };
  }

  stats() {
    return this.counts;
  }

  byDocument(id) {
    return { must: [{ key: 'document', match: { value: id } }] };
  }

  async putDocument(document, chunks, vectors) {
    const existed = (await this.count(this.byDocument(document.id))) > 0;
    if (existed)
      await this.call('POST', `${this.path}/points/delete?wait=true`, {
        filter: this.byDocument(document.id),
      });
    const ingestedAt = new Date().toISOString();
    for (let start = 0; start < chunks.length; start += UPSERT_BATCH) {
      const points = [];
      for (let i = start; i < Math.min(chunks.length, start + UPSERT_BATCH); i++) {
        points.push({
          id: pointId(document.id, i),
          vector: Array.from(vectors[i]),
          payload: {
            document: document.id,
            chunk: i,
            text: chunks[i],
            title: document.title ?? null,
            source: document.source ?? null,
            format: document.format ?? 'text',
            sha256: document.sha256 ?? null,
            chars: document.chars ?? null,
            chunks: chunks.length,
            ingestedAt,
          },
        });
      }
      await this.call('PUT', `${this.path}/points?wait=true`, { points });
    }
    await this.refreshStats();
    return { replaced: existed };
  }

  async deleteDocument(id) {
    if ((await this.count(this.byDocument(id))) === 0) return false;
    await this.call('POST', `${this.path}/points/delete?wait=true`, { filter: this.byDocument(id) });
    await this.refreshStats();
    return true;
  }

  describe(payload) {
    return {
      id: payload.document,
      title: payload.title,
      source: payload.source,
      format: payload.format,
      sha256: payload.sha256,
      chars: payload.chars,
      chunks: payload.chunks,
      ingestedAt: payload.ingestedAt,
    };
  }

  async getDocument(id) {
    const response = await this.call('POST', `${this.path}/points/scroll`, {
      filter: { must: [...this.byDocument(id).must, { key: 'chunk', match: { value: 0 } }] },
      limit: 1,
      with_payload: true,
      with_vector: false,
    });
    const point = response.body?.result?.points?.[0];
    return point ? this.describe(point.payload) : null;
  }

  async listDocuments() {
    const documents = [];
    let offset = null;
    do {
      const response = await this.call('POST', `${this.path}/points/scroll`, {
        filter: { must: [{ key: 'chunk', match: { value: 0 } }] },
        limit: SCROLL_PAGE,
        with_payload: true,
        with_vector: false,
        ...(offset === null ? {} : { offset }),
      });
      for (const point of response.body?.result?.points ?? []) documents.push(this.describe(point.payload));
      offset = response.body?.result?.next_page_offset ?? null;
    } while (offset !== null);
    return documents.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async search(vector, k) {
    const response = await this.call('POST', `${this.path}/points/search`, {
      vector: Array.from(vector),
      limit: k,
      with_payload: true,
      with_vector: false,
    });
    return (response.body?.result ?? []).map((hit) => ({
      document: hit.payload.document,
      chunk: hit.payload.chunk,
      score: hit.score,
      text: hit.payload.text,
      title: hit.payload.title,
      source: hit.payload.source,
    }));
  }

  async close() {}
}
