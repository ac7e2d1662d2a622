#!/usr/bin/env node
// apertus RAG service: ingest documents, embed them through the model runtime, retrieve
// passages, answer with their sources, and write every request to a hash-chained audit log.
//
// Plain JavaScript on purpose, like templates/runtime/server.mjs: it runs on the
// air-gapped host with the Node binary the bundle ships; its npm packages (prom-client, and
// pg, unpdf and mammoth, loaded only when used) come from the runtime component's
// node_modules (rag/ sits inside that directory).
//
//   node server.mjs --port P --data-dir DIR --embedding-model ID --chat-model ID --dimension N
//                   [--host 127.0.0.1] [--runtime-url http://127.0.0.1:18080] [--embeddings-url URL]
//                   [--audit-log DIR/audit.log] [--chunk-size 800] [--chunk-overlap 120]
//                   [--top-k 4] [--max-context-chars 4000] [--embed-batch 16]
//                   [--runtime-timeout 300] [--query-prefix S] [--passage-prefix S] [--reindex]
//                   [--store file|qdrant|pgvector] [--qdrant-url http://127.0.0.1:6333] [--qdrant-collection NAME]
//                   [--pgvector-collection NAME] [--pgvector-port 5432] [--pgvector-url-file FILE]
//                   [--checkpoint-key FILE [--checkpoint-every 100]] [--gateway-token-file FILE]
//
// Stores: 'file' (default) is the embedded store in --data-dir (vector-store.mjs); 'qdrant'
// keeps the vectors in a Qdrant server (qdrant-store.mjs; API key from QDRANT_API_KEY),
// and only the lock, the pid file and the audit log in --data-dir. 'pgvector' keeps them in
// PostgreSQL (pgvector-store.mjs). Its connection URL may hold a password, so it never comes
// from argv: APERTUS_PGVECTOR_URL, else the first line of --pgvector-url-file (default
// <data-dir>/pgvector.url; refused when others may read it), else
// postgresql://postgres@127.0.0.1:<--pgvector-port>/postgres (a loopback server that trusts
// local connections, as the bundled pgvector container does).
//
// Endpoints (JSON unless said otherwise):
//   GET    /health                 200 {status:'ok',...} once the store is open, the runtime
//                                  answers and its embeddings have the collection's model and
//                                  dimension; 503 {status, detail} before. Not audited.
//   GET    /metrics                Prometheus text. Not audited.
//   GET    /v1/models              the chat model (and the embedding model when it differs), for
//                                  OpenAI clients; GET /v1/models/:id one of them, 404 model_not_found else.
//   POST   /v1/embeddings          passed to the embeddings runtime as sent (so an app needs one base
//                                  URL); `model` must be the collection's embedding model.
//   POST   /v1/documents           {text, id?, title?, source?, format?: text|markdown|html}, or
//                                  {content_base64, format: pdf|docx (or a source ending so), id?, ...}
//                                  -> 201 (200 when it replaced a document of that id); a PDF that
//                                  needs a password or has no text layer, or an unreadable DOCX: 422
//                                  with the reason. PDF chunks name their page, DOCX chunks their
//                                  heading (documents.mjs, chunkLocation), and so do the sources.
//   GET    /v1/documents           {object:'list', data:[document]}
//   GET    /v1/documents/:id       the document's metadata
//   DELETE /v1/documents/:id       {id, deleted:true}
//   POST   /v1/query               {query, top_k?} -> {data:[{document, chunk, score, text, title, source, page, section}]}
//   POST   /v1/chat/completions    an OpenAI chat request; passages retrieved for the last user
//                                  message go first as numbered sources; the runtime's answer
//                                  comes back with `sources: [{index, document, chunk, score, title, source,
//                                  page, section}]`,
//                                  top level and in `usage.sources` (see "Sources" below). Every other
//                                  parameter goes to the runtime, which honours it or refuses it with
//                                  a 400 naming it; that refusal reaches the caller as it is.
//                                  `stream: true` streams the runtime's chunks as it produces them;
//                                  the sources ride in the first chunk.
//
// Sources: LangChain's ChatOpenAI keeps, of a chat completion, the message's content,
// tool_calls, function_call and audio, each choice's finish_reason and logprobs, and the
// response's id, model, system_fingerprint, service_tier and `usage` as a whole dict in
// response_metadata.token_usage (langchain_openai/chat_models/base.py, _create_chat_result
// and _convert_dict_to_message); a top-level `sources` is dropped. So the sources are also
// in `usage.sources` (LangChain: `message.response_metadata["token_usage"]["sources"]`),
// which leaves the content, the one thing every client shows, as the model wrote it.
// Streamed, `usage` comes only with stream_options.include_usage, and the sources with it.
//
// Errors: OpenAI's shape, `type` from OpenAI's set (invalid_request_error for 4xx,
// server_error for 5xx), `code` naming the case (model_not_found, unsupported_parameter, ...).
//
// Caller identity: the `x-apertus-caller` header (at most 128 characters), 'anonymous' when
// absent. The service does not authenticate callers itself: it listens on loopback behind
// the gateway (templates/gateway/), which checks the API key and sends the key's name. With
// --gateway-token-file, the header is taken as the caller only when the request also carries
// `x-apertus-gateway` equal to that file's token (shared with the gateway, 0600, never sent
// to clients); any other caller header, say from a local process on the host, is recorded as
// `claimed:<value>`, which no key name can equal (key names have no colon). Without the
// flag the header is taken as-is, as before there was a gateway.
//
// Audit: every request but /health and /metrics, including refused and unknown ones, gets
// one record (see audit-log.mjs) written and fsync'd before its response is sent; the
// response carries the record's number in `x-apertus-audit-seq`. A streamed answer is the
// exception: its record, with the hash of every byte streamed, is written when the stream
// ends, and its number comes as the `x-apertus-audit-seq` HTTP trailer; if that record
// cannot be written, the stream ends with an error event instead of [DONE]. A request whose record
// cannot be written gets 503 and no record. With --checkpoint-key (an unencrypted minisign
// secret key: the host's key), the log's head is anchored in signed checkpoints in
// `<audit log>.checkpoints`: every --checkpoint-every records, at shutdown and at start, so
// records cut from the log while the service is stopped are found (see audit-log.mjs). A
// log that lost checkpointed records is refused at start, key or not.
//
// Exit status: 0 after SIGTERM/SIGINT, 2 for bad arguments (an unusable --checkpoint-key
// included) or a collection locked to another embedding model (see --reindex), 1 for other
// start failures (an audit log that lost records included).

import { createHash, timingSafeEqual } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { createServer } from 'node:http';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { AuditLog, AuditLogError, readCheckpointKey, sha256Hex } from './audit-log.mjs';
import {
  BINARY_FORMATS,
  chunkLocation,
  chunkSections,
  chunkText,
  detectFormat,
  extractText,
  FORMATS,
} from './documents.mjs';
import { createMetrics } from './metrics.mjs';
import { QdrantVectorStore } from './qdrant-store.mjs';
import { createRuntimeClient, RuntimeError } from './runtime-client.mjs';
import {
  CollectionLockError,
  FileVectorStore,
  readCollection,
  reindexFileVectorStore,
} from './vector-store.mjs';

const STORES = ['file', 'qdrant', 'pgvector'];
const MAX_BODY_BYTES = 16 * 1024 * 1024;
const MAX_CALLER_CHARS = 128;
const MAX_TOP_K = 50;
const DOCUMENT_ID = /^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}$/;
const RUNTIME_HEALTH_TTL_MS = 1000;
const SHUTDOWN_GRACE_MS = 10_000;
const CALLER_HEADER = 'x-apertus-caller';
const GATEWAY_HEADER = 'x-apertus-gateway';

/** The token the gateway proves itself with; compared by digest, in constant time. */
function readGatewayToken(file) {
  let token;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (error) {
    fail(2, `cannot read --gateway-token-file: ${error.message}`);
  }
  if (!/^[A-Za-z0-9_-]{32,}$/.test(token))
    fail(2, '--gateway-token-file must hold at least 32 base64url characters');
  return createHash('sha256').update(token).digest();
}

/** The caller to record: the header as sent by the gateway, a claim otherwise. */
function callerOf(req, text) {
  if (text === '' || options.gatewayToken === null) return text;
  const presented = req.headers[GATEWAY_HEADER];
  const digest = createHash('sha256')
    .update(typeof presented === 'string' ? presented : '')
    .digest();
  return timingSafeEqual(digest, options.gatewayToken) ? text : `claimed:${text}`;
}

/** `code` names the case; the OpenAI `type` follows from the status (openAiError). */
class HttpError extends Error {
  constructor(status, message, code = null, param = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
  }
}

const DEFAULT_CODES = {
  400: 'invalid_value',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'request_too_large',
};

/** OpenAI's error object: a runtime's own 4xx error passes as it is, so its code and param reach the caller. */
function openAiError(error) {
  if (error instanceof RuntimeError && error.upstreamError !== null) {
    const upstream = error.upstreamError;
    return {
      message: typeof upstream.message === 'string' ? upstream.message : error.message,
      type: typeof upstream.type === 'string' ? upstream.type : 'invalid_request_error',
      param: typeof upstream.param === 'string' ? upstream.param : null,
      code: typeof upstream.code === 'string' ? upstream.code : (DEFAULT_CODES[error.status] ?? null),
    };
  }
  const status = error.status ?? 500;
  const type =
    status === 401
      ? 'authentication_error'
      : status === 403
        ? 'permission_error'
        : status === 429
          ? 'rate_limit_error'
          : status >= 500
            ? 'server_error'
            : 'invalid_request_error';
  const code = error instanceof RuntimeError ? error.type : (error.code ?? DEFAULT_CODES[status] ?? null);
  return { message: error.message, type, param: error.param ?? null, code };
}

function log(line) {
  process.stdout.write(`${new Date().toISOString()} ${line}\n`);
}

function fail(code, message) {
  process.stderr.write(`rag server.mjs: ${message}\n`);
  process.exit(code);
}

// ---- options -------------------------------------------------------------------------------

function readOptions() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string' },
        'data-dir': { type: 'string' },
        'audit-log': { type: 'string' },
        'runtime-url': { type: 'string', default: 'http://127.0.0.1:18080' },
        'embeddings-url': { type: 'string' },
        'embedding-model': { type: 'string' },
        'chat-model': { type: 'string' },
        dimension: { type: 'string' },
        'chunk-size': { type: 'string', default: '800' },
        'chunk-overlap': { type: 'string', default: '120' },
        'top-k': { type: 'string', default: '4' },
        'max-context-chars': { type: 'string', default: '4000' },
        'embed-batch': { type: 'string', default: '16' },
        'runtime-timeout': { type: 'string', default: '300' },
        'query-prefix': { type: 'string', default: '' },
        'passage-prefix': { type: 'string', default: '' },
        reindex: { type: 'boolean', default: false },
        store: { type: 'string', default: 'file' },
        'qdrant-url': { type: 'string', default: 'http://127.0.0.1:6333' },
        'qdrant-collection': { type: 'string', default: 'apertus' },
        'pgvector-collection': { type: 'string', default: 'apertus' },
        'pgvector-port': { type: 'string', default: '5432' },
        'pgvector-url-file': { type: 'string' },
        'checkpoint-key': { type: 'string' },
        'checkpoint-every': { type: 'string' },
        'gateway-token-file': { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    fail(2, error.message);
  }
  const integer = (name, { min = 1, max = Number.MAX_SAFE_INTEGER } = {}) => {
    const value = values[name];
    if (value === undefined) fail(2, `--${name} is required`);
    if (!/^[0-9]+$/.test(value) || Number(value) < min || Number(value) > max) {
      fail(2, `--${name} must be an integer from ${min} to ${max}, got "${value}"`);
    }
    return Number(value);
  };
  const text = (name) => {
    if (values[name] === undefined || values[name] === '') fail(2, `--${name} is required`);
    return values[name];
  };
  const dataDir = resolve(text('data-dir'));
  const options = {
    host: values.host,
    port: integer('port', { max: 65535 }),
    dataDir,
    auditLog: resolve(values['audit-log'] ?? join(dataDir, 'audit.log')),
    runtimeUrl: values['runtime-url'],
    // An embedding model served apart from the chat model (vLLM runs one model per server).
    embeddingsUrl: values['embeddings-url'] ?? values['runtime-url'],
    embeddingModel: text('embedding-model'),
    chatModel: text('chat-model'),
    dimension: integer('dimension', { max: 65536 }),
    chunkSize: integer('chunk-size', { min: 50 }),
    chunkOverlap: integer('chunk-overlap', { min: 0 }),
    topK: integer('top-k', { max: MAX_TOP_K }),
    maxContextChars: integer('max-context-chars', { min: 100 }),
    embedBatch: integer('embed-batch', { max: 1024 }),
    runtimeTimeoutMs: integer('runtime-timeout') * 1000,
    queryPrefix: values['query-prefix'],
    passagePrefix: values['passage-prefix'],
    reindex: values.reindex,
    store: values.store,
    qdrantUrl: values['qdrant-url'],
    qdrantCollection: values['qdrant-collection'],
    pgvectorCollection: values['pgvector-collection'],
    pgvectorPort: integer('pgvector-port', { max: 65535 }),
    pgvectorUrlFile: resolve(values['pgvector-url-file'] ?? join(dataDir, 'pgvector.url')),
    checkpointKey: values['checkpoint-key'] === undefined ? null : resolve(values['checkpoint-key']),
    checkpointEvery: values['checkpoint-every'] === undefined ? 100 : integer('checkpoint-every'),
    gatewayToken:
      values['gateway-token-file'] === undefined ? null : readGatewayToken(values['gateway-token-file']),
  };
  if (options.checkpointKey === null && values['checkpoint-every'] !== undefined) {
    fail(2, '--checkpoint-every needs --checkpoint-key: checkpoints are signed');
  }
  if (!STORES.includes(options.store))
    fail(2, `--store must be ${STORES.join(', ')}, got "${options.store}"`);
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(options.pgvectorCollection))
    fail(2, '--pgvector-collection must be 1-64 letters, digits, _ or -');
  if (options.store === 'qdrant' && options.reindex) {
    fail(
      2,
      '--reindex re-embeds the embedded store only; with Qdrant, use a new --qdrant-collection and ingest again',
    );
  }
  if (options.chunkOverlap >= options.chunkSize / 2) {
    fail(
      2,
      `--chunk-overlap (${options.chunkOverlap}) must be below half of --chunk-size (${options.chunkSize})`,
    );
  }
  return options;
}

const options = readOptions();
function runtimeClient(url) {
  try {
    return createRuntimeClient({ url, timeoutMs: options.runtimeTimeoutMs });
  } catch (error) {
    return fail(2, error.message);
  }
}
const runtime = runtimeClient(options.runtimeUrl);
const embedder =
  options.embeddingsUrl === options.runtimeUrl ? runtime : runtimeClient(options.embeddingsUrl);
const metrics = createMetrics(() => ({
  ...(store?.stats() ?? { documents: 0, chunks: 0 }),
  auditRecords: audit?.appendedSinceStart ?? 0,
  auditLastSeq: audit?.seq ?? 0,
  runtimeUp: runtimeHealth.ok,
}));

// ---- one service per data dir ----------------------------------------------------------

const pidFile = join(options.dataDir, 'rag.pid');

function takeDataDir() {
  mkdirSync(options.dataDir, { recursive: true, mode: 0o750 });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(pidFile, 'wx', 0o640);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
    }
    const pid = Number.parseInt(readFileSync(pidFile, 'utf8').trim(), 10);
    let holder = false;
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) {
      try {
        holder = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(options.dataDir);
      } catch {
        holder = false;
      }
    }
    if (holder) fail(1, `another RAG service (pid ${pid}) uses ${options.dataDir}; stop it first`);
    rmSync(pidFile, { force: true });
  }
  fail(1, `cannot take ${pidFile}`);
}

function releaseDataDir() {
  try {
    if (readFileSync(pidFile, 'utf8').trim() === String(process.pid)) rmSync(pidFile, { force: true });
  } catch {}
}

// ---- state -------------------------------------------------------------------------------

/** 'starting' | 'reindexing' | 'ready'; the store is null until ready. */
let state = 'starting';
let stateDetail = 'opening the collection';
let store = null;
let audit = null;
let shuttingDown = false;
let inFlight = 0;
let runtimeHealth = { at: 0, ok: false, detail: 'not checked yet' };
let runtimeHealthCheck = null;
/** Set once an embedding from the runtime matched the collection's model and dimension. */
let embeddingsVerified = false;

async function checkRuntime() {
  if (Date.now() - runtimeHealth.at < RUNTIME_HEALTH_TTL_MS) return runtimeHealth;
  runtimeHealthCheck ??= (async () => {
    let result = await runtime.healthy();
    if (result.ok && embedder !== runtime) result = await embedder.healthy();
    if (result.ok && !embeddingsVerified) {
      try {
        await embed(['apertus embedding check']);
        embeddingsVerified = true;
      } catch (error) {
        result = { ok: false, detail: error.message };
      }
    }
    runtimeHealth = { at: Date.now(), ...result };
    runtimeHealthCheck = null;
    return runtimeHealth;
  })();
  return runtimeHealthCheck;
}

/** Embeds through the runtime and holds it to the collection's model and dimension. */
async function embed(texts) {
  const lock = store?.lock ?? { embeddingModel: options.embeddingModel, dimension: options.dimension };
  const vectors = [];
  for (let start = 0; start < texts.length; start += options.embedBatch) {
    const batch = texts.slice(start, start + options.embedBatch);
    const result = await embedder.embed(options.embeddingModel, batch).catch((error) => {
      if (error instanceof RuntimeError && error.upstreamError?.code === 'model_not_found') {
        throw new RuntimeError(
          502,
          `the runtime at ${embedder.url} does not serve "${options.embeddingModel}", the embedding model the collection is locked to (it answered: ${error.message})`,
          { type: 'embedding_model_mismatch' },
        );
      }
      throw error;
    });
    if (result.model !== null && result.model !== lock.embeddingModel) {
      throw new RuntimeError(
        502,
        `the runtime at ${embedder.url} embeds with model "${result.model}", but the collection is locked to "${lock.embeddingModel}"`,
        { type: 'embedding_model_mismatch' },
      );
    }
    for (const vector of result.vectors) {
      if (vector.length !== lock.dimension) {
        throw new RuntimeError(
          502,
          `the runtime's embeddings have dimension ${vector.length}, but the collection is locked to dimension ${lock.dimension}`,
          { type: 'embedding_model_mismatch' },
        );
      }
    }
    vectors.push(...result.vectors);
  }
  return vectors;
}

// ---- request helpers -----------------------------------------------------------------------

function objectBody(buffer) {
  const text = buffer.toString('utf8');
  if (text.trim() === '') throw new HttpError(400, 'request body is empty; send a JSON object');
  let body;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, `request body is not valid JSON: ${error.message}`);
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, 'request body must be a JSON object');
  }
  return body;
}

function optionalString(body, name, max = 2000) {
  const value = body[name];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || value.length > max) {
    throw new HttpError(400, `${name} must be a string of at most ${max} characters`, undefined, name);
  }
  return value;
}

function topK(body, name) {
  const value = body[name];
  if (value === undefined || value === null) return options.topK;
  if (!Number.isInteger(value) || value < 1 || value > MAX_TOP_K) {
    throw new HttpError(400, `${name} must be an integer from 1 to ${MAX_TOP_K}`, undefined, name);
  }
  return value;
}

function documentId(raw) {
  let id;
  try {
    id = decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, 'the document id in the path is not valid percent-encoding');
  }
  if (!DOCUMENT_ID.test(id))
    throw new HttpError(404, `no document ${JSON.stringify(id)}`, 'document_not_found');
  return id;
}

function requireReady() {
  if (state !== 'ready')
    throw new HttpError(503, `the service is ${state}: ${stateDetail}`, 'service_unavailable');
}

/** Top-k passages for a query, each with the page and section its chunk names (or null). */
async function retrieve(query, k) {
  const started = process.hrtime.bigint();
  const [vector] = await embed([`${options.queryPrefix}${query}`]);
  const hits = (await store.search(vector, k)).map((hit) => ({ ...hit, ...chunkLocation(hit.text) }));
  metrics.retrieval(Number(process.hrtime.bigint() - started) / 1e9, hits);
  return hits;
}

const json = (status, value, documents = []) => ({
  status,
  body: JSON.stringify(value),
  type: 'application/json',
  documents,
});

// ---- handlers ------------------------------------------------------------------------------

/** A PDF or DOCX from base64 to { text (for sizes), chunks, title }; refusals become 422. */
async function readBinaryDocument(format, encoded) {
  if (typeof encoded !== 'string' || encoded === '' || !/^[A-Za-z0-9+/]*={0,2}$/.test(encoded)) {
    throw new HttpError(
      400,
      `content_base64 must hold the ${format} file in base64`,
      undefined,
      'content_base64',
    );
  }
  const bytes = Buffer.from(encoded, 'base64');
  const { readPdf, readDocx, DocumentRefusedError } = await import('./document-readers.mjs');
  let read;
  try {
    read = format === 'pdf' ? await readPdf(bytes) : await readDocx(bytes);
  } catch (error) {
    if (error instanceof DocumentRefusedError)
      throw new HttpError(422, error.message, 'unprocessable_document', 'content_base64');
    throw error;
  }
  return {
    bytes,
    title: read.title,
    chars: read.sections.reduce((sum, section) => sum + section.text.length, 0),
    chunks: chunkSections(read.sections, { size: options.chunkSize, overlap: options.chunkOverlap }),
  };
}

async function ingestDocument({ body: raw }) {
  requireReady();
  const body = objectBody(raw);
  const requested = optionalString(body, 'format', 20) ?? undefined;
  if (body.content_base64 !== undefined) return ingestBinaryDocument(body, requested);
  const content = body.text ?? body.content;
  if (typeof content !== 'string' || content.trim() === '') {
    throw new HttpError(400, 'text must be a non-empty string holding the document', undefined, 'text');
  }
  const format = detectFormat(requested, body.source, content);
  if (BINARY_FORMATS.includes(format))
    throw new HttpError(
      400,
      `send a ${format} file as content_base64, not as text`,
      undefined,
      'content_base64',
    );
  if (!FORMATS.includes(format))
    throw new HttpError(
      400,
      `format must be one of ${[...FORMATS, ...BINARY_FORMATS].join(', ')}`,
      undefined,
      'format',
    );
  const extracted = extractText(format, content);
  if (extracted.text === '')
    throw new HttpError(400, `the ${format} document holds no text`, undefined, 'text');
  const chunks = chunkText(extracted.text, { size: options.chunkSize, overlap: options.chunkOverlap });
  return storeDocument(body, {
    format,
    sha256: sha256Hex(content),
    title: extracted.title,
    chars: extracted.text.length,
    chunks,
  });
}

async function ingestBinaryDocument(body, requested) {
  const format = detectFormat(requested, body.source, '');
  if (!BINARY_FORMATS.includes(format)) {
    throw new HttpError(
      400,
      `content_base64 is for ${BINARY_FORMATS.join(' and ')} files: set format, or a source ending in .pdf or .docx`,
      undefined,
      'format',
    );
  }
  const read = await readBinaryDocument(format, body.content_base64);
  return storeDocument(body, {
    format,
    sha256: createHash('sha256').update(read.bytes).digest('hex'),
    title: read.title,
    chars: read.chars,
    chunks: read.chunks,
  });
}

/** Embeds a document's chunks and stores them under its id (given, or from its sha256). */
async function storeDocument(body, { format, sha256, title, chars, chunks }) {
  const id = optionalString(body, 'id', 200) ?? `doc-${sha256.slice(0, 16)}`;
  if (!DOCUMENT_ID.test(id)) {
    throw new HttpError(
      400,
      'id must start with a letter or digit and hold only letters, digits and . _ : @ + -, at most 200',
      undefined,
      'id',
    );
  }
  let vectors;
  try {
    vectors = await embed(chunks.map((chunk) => `${options.passagePrefix}${chunk}`));
  } catch (error) {
    if (error instanceof RuntimeError && error.upstreamStatus === 400) {
      throw new HttpError(
        400,
        `the embedding model refused a chunk of this document (${error.message}); start the RAG service with a smaller --chunk-size`,
        'invalid_value',
        'text',
      );
    }
    throw error;
  }
  const document = {
    id,
    title: optionalString(body, 'title', 1000) ?? title,
    source: optionalString(body, 'source', 2000),
    format,
    sha256,
    chars,
  };
  const { replaced } = await store.putDocument(document, chunks, vectors);
  return json(replaced ? 200 : 201, { object: 'document', ...document, chunks: chunks.length, replaced }, [
    id,
  ]);
}

async function listDocuments() {
  requireReady();
  return json(200, { object: 'list', data: await store.listDocuments() });
}

async function getDocument({ params }) {
  requireReady();
  const id = documentId(params.id);
  const document = await store.getDocument(id);
  if (document === null) throw new HttpError(404, `no document ${JSON.stringify(id)}`, 'document_not_found');
  return json(200, { object: 'document', ...document }, [id]);
}

async function deleteDocument({ params }) {
  requireReady();
  const id = documentId(params.id);
  if (!(await store.deleteDocument(id)))
    throw new HttpError(404, `no document ${JSON.stringify(id)}`, 'document_not_found');
  return json(200, { id, object: 'document', deleted: true }, [id]);
}

async function query({ body: raw }) {
  requireReady();
  const body = objectBody(raw);
  if (typeof body.query !== 'string' || body.query.trim() === '') {
    throw new HttpError(400, 'query must be a non-empty string', undefined, 'query');
  }
  const hits = await retrieve(body.query, topK(body, 'top_k'));
  return json(200, { object: 'list', model: store.lock.embeddingModel, query: body.query, data: hits }, [
    ...new Set(hits.map((hit) => hit.document)),
  ]);
}

function messageText(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content))
    return content
      .map((part) => (part?.type === 'text' && typeof part.text === 'string' ? part.text : ''))
      .join('');
  return '';
}

/** The retrieved passages as a system message, within the character budget. */
function contextMessage(hits) {
  const used = [];
  let budget = options.maxContextChars;
  const blocks = [];
  for (const hit of hits) {
    if (budget <= 0) break;
    const index = used.length + 1;
    const label = [hit.title, hit.source].filter(Boolean).join(', ');
    const header = `[${index}] ${label ? `${label}; ` : ''}document ${hit.document}, chunk ${hit.chunk}`;
    const text = hit.text.length > budget ? `${hit.text.slice(0, budget)}...` : hit.text;
    budget -= text.length;
    blocks.push(`${header}\n${text}`);
    used.push({
      index,
      document: hit.document,
      chunk: hit.chunk,
      score: hit.score,
      title: hit.title,
      source: hit.source,
      page: hit.page,
      section: hit.section,
    });
  }
  const content =
    'Answer the question with the numbered sources below. Cite the sources you use as [1], [2] and so on. ' +
    'If the sources do not hold the answer, say that you do not know.\n\nSources:\n\n' +
    blocks.join('\n\n');
  return { content, sources: used };
}

/** 404 model_not_found unless `model` is absent or `expected`, as OpenAI answers an unknown model. */
function checkModel(body, expected) {
  if (body.model === undefined) return;
  if (typeof body.model !== 'string')
    throw new HttpError(400, 'model must be a string', 'invalid_type', 'model');
  if (body.model !== expected) {
    throw new HttpError(
      404,
      `The model \`${body.model}\` does not exist here; this endpoint serves \`${expected}\` (GET /v1/models lists the models).`,
      'model_not_found',
      'model',
    );
  }
}

/** Parameters the RAG service itself reads; every other one goes to the runtime to honour or refuse. */
const RAG_CHAT_PARAMETERS = new Set(['model', 'messages', 'stream', 'stream_options', 'rag_top_k']);

async function chatCompletions({ body: raw }) {
  requireReady();
  const body = objectBody(raw);
  checkModel(body, options.chatModel);
  if (!Array.isArray(body.messages) || body.messages.length === 0) {
    throw new HttpError(400, 'messages must be a non-empty array', undefined, 'messages');
  }
  if (body.stream !== undefined && typeof body.stream !== 'boolean') {
    throw new HttpError(400, 'stream must be true or false', 'invalid_type', 'stream');
  }
  const lastUser = [...body.messages].reverse().find((m) => m?.role === 'user');
  const question = lastUser === undefined ? '' : messageText(lastUser.content);
  if (question.trim() === '')
    throw new HttpError(400, 'messages must hold a user message with text', undefined, 'messages');
  const hits = await retrieve(question, topK(body, 'rag_top_k'));
  const context = contextMessage(hits);
  const messages = [...body.messages];
  if (messages[0]?.role === 'system' && typeof messages[0].content === 'string') {
    messages[0] = { role: 'system', content: `${context.content}\n\n${messages[0].content}` };
  } else {
    messages.unshift({ role: 'system', content: context.content });
  }
  const forwarded = { model: options.chatModel, messages };
  for (const [name, value] of Object.entries(body)) {
    if (!RAG_CHAT_PARAMETERS.has(name)) forwarded[name] = value;
  }
  const documents = [...new Set(context.sources.map((s) => s.document))];
  const withSources = (usage) => (usage ? { ...usage, sources: context.sources } : usage);
  if (body.stream !== true) {
    const answer = await runtime.chat(forwarded);
    return json(200, { ...answer, usage: withSources(answer.usage), sources: context.sources }, documents);
  }

  // Streamed as the runtime produces it: the runtime's refusal (a 4xx before any event)
  // still reaches the caller as a plain error, since nothing is sent before it answers 200.
  if (body.stream_options != null) forwarded.stream_options = body.stream_options;
  const upstream = await runtime.openChatStream(forwarded);
  return {
    status: 200,
    type: 'text/event-stream',
    documents,
    headers: { 'cache-control': 'no-cache' },
    async stream(write, signal) {
      // A caller who hung up frees the runtime: its generation stops with our connection.
      signal.addEventListener('abort', () => upstream.abort(), { once: true });
      let first = true;
      try {
        for await (const event of upstream.events) {
          const chunk = { ...event };
          if (first) chunk.sources = context.sources;
          first = false;
          if (chunk.usage) chunk.usage = withSources(chunk.usage);
          write(`data: ${JSON.stringify(chunk)}\n\n`);
        }
      } finally {
        upstream.abort();
      }
    },
  };
}

function modelObjects() {
  const created = Math.floor(startedAt / 1000);
  const ids = [...new Set([options.chatModel, store?.lock.embeddingModel ?? options.embeddingModel])];
  return ids.map((id) => ({ id, object: 'model', created, owned_by: 'apertus-rag' }));
}

async function listModels() {
  return json(200, { object: 'list', data: modelObjects() });
}

async function getModel({ params }) {
  let id;
  try {
    id = decodeURIComponent(params.id);
  } catch {
    id = params.id;
  }
  const model = modelObjects().find((m) => m.id === id);
  if (model === undefined) {
    throw new HttpError(404, `The model \`${id}\` does not exist here.`, 'model_not_found', 'model');
  }
  return json(200, model);
}

/**
 * /v1/embeddings as the embeddings runtime answers it, so an app needs one base URL. The
 * model must be the collection's (anything else would embed into another space); the
 * runtime checks the rest and its refusals pass as they are. Empty input is refused here
 * too, as not every runtime refuses it.
 */
async function embeddings({ body: raw }) {
  requireReady();
  const body = objectBody(raw);
  const model = store.lock.embeddingModel;
  checkModel(body, model);
  const { input } = body;
  const empty = (v) => v === '' || (Array.isArray(v) && v.length === 0);
  if (input === undefined || empty(input) || (Array.isArray(input) && input.some(empty))) {
    throw new HttpError(
      400,
      'input must be a non-empty string or a non-empty array of non-empty strings',
      'invalid_value',
      'input',
    );
  }
  return json(200, await embedder.embeddings({ ...body, model }));
}

const routes = [
  { method: 'GET', pattern: '/v1/models', handler: listModels },
  { method: 'GET', pattern: '/v1/models/:id', handler: getModel },
  { method: 'POST', pattern: '/v1/embeddings', handler: embeddings },
  { method: 'POST', pattern: '/v1/documents', handler: ingestDocument },
  { method: 'GET', pattern: '/v1/documents', handler: listDocuments },
  { method: 'GET', pattern: '/v1/documents/:id', handler: getDocument },
  { method: 'DELETE', pattern: '/v1/documents/:id', handler: deleteDocument },
  { method: 'POST', pattern: '/v1/query', handler: query },
  { method: 'POST', pattern: '/v1/chat/completions', handler: chatCompletions },
].map((route) => ({
  ...route,
  regex: new RegExp(`^${route.pattern.replace(/:([a-z]+)/g, '(?<$1>[^/]+)')}$`),
}));

function matchRoute(method, path) {
  let pathMatched = null;
  for (const route of routes) {
    const match = route.regex.exec(path);
    if (match === null) continue;
    if (route.method === method) return { route, params: match.groups ?? {} };
    pathMatched ??= route;
  }
  return { route: null, pathMatched };
}

// ---- HTTP ----------------------------------------------------------------------------------

function errorResult(error) {
  if (error instanceof HttpError || error instanceof RuntimeError) {
    return json(error.status, { error: openAiError(error) });
  }
  process.stderr.write(`rag server.mjs: ${error?.stack ?? error}\n`);
  return json(500, {
    error: {
      message: error?.message ?? String(error),
      type: 'server_error',
      param: null,
      code: 'internal_error',
    },
  });
}

/** The body, at most MAX_BODY_BYTES; the hash covers every byte read. */
async function readBody(req) {
  const hash = createHash('sha256');
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    hash.update(chunk);
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return { tooLarge: true, sha256: hash.digest('hex') };
    chunks.push(chunk);
  }
  return { tooLarge: false, body: Buffer.concat(chunks), sha256: hash.digest('hex') };
}

function send(res, status, bodyText, type, headers = {}) {
  const body = Buffer.from(bodyText);
  res.writeHead(status, { 'content-type': type, 'content-length': body.length, ...headers });
  res.end(body);
  return body;
}

async function serveAudited(req, res, path) {
  const rawCaller = req.headers[CALLER_HEADER];
  const callerText = typeof rawCaller === 'string' ? rawCaller.trim() : '';
  const caller = callerText === '' ? 'anonymous' : callerOf(req, callerText.slice(0, MAX_CALLER_CHARS));
  const { route, params, pathMatched } = matchRoute(req.method, path);
  const request = await readBody(req);

  let result;
  if (request.tooLarge)
    result = errorResult(new HttpError(413, `request body is over ${MAX_BODY_BYTES} bytes`));
  else if (callerText.length > MAX_CALLER_CHARS) {
    result = errorResult(
      new HttpError(400, `the ${CALLER_HEADER} header is over ${MAX_CALLER_CHARS} characters`),
    );
  } else if (shuttingDown)
    result = errorResult(new HttpError(503, 'the service is shutting down', 'shutting_down'));
  else if (route === null) {
    result = errorResult(
      pathMatched
        ? new HttpError(405, `${req.method} is not allowed on ${path}`)
        : new HttpError(404, `no route for ${req.method} ${path}`, 'unknown_url'),
    );
  } else {
    try {
      result = await route.handler({ body: request.body, params });
    } catch (error) {
      result = errorResult(error);
    }
  }

  if (result.stream !== undefined) return serveStream(req, res, { route, caller, request, result });
  const body = Buffer.from(result.body);
  let record;
  try {
    if (audit === null) throw new AuditLogError('the audit log is not open');
    record = await audit.append({
      caller,
      method: req.method,
      endpoint: path,
      status: result.status,
      requestSha256: request.sha256,
      responseSha256: sha256Hex(body),
      documents: result.documents,
    });
  } catch (error) {
    process.stderr.write(`rag server.mjs: audit record not written: ${error.message}\n`);
    const refused = errorResult(
      new HttpError(
        503,
        `the request was not answered: its audit record could not be written (${error.message})`,
        'audit_unavailable',
      ),
    );
    send(res, 503, refused.body, refused.type, { connection: 'close' });
    return { route: route?.pattern ?? 'unmatched', status: 503, caller, seq: null };
  }
  send(res, result.status, body, result.type, {
    ...(result.headers ?? {}),
    'x-apertus-audit-seq': String(record.seq),
    ...(request.tooLarge ? { connection: 'close' } : {}),
  });
  return { route: route?.pattern ?? 'unmatched', status: result.status, caller, seq: record.seq };
}

/**
 * A streamed answer: sent as it comes, then recorded with the hash of every byte sent; the
 * record's number follows as a trailer. A record that cannot be written ends the stream
 * with an error event in place of [DONE], so the client knows the answer is not on record.
 */
async function serveStream(req, res, { route, caller, request, result }) {
  res.writeHead(result.status, {
    'content-type': result.type,
    ...(result.headers ?? {}),
    trailer: 'x-apertus-audit-seq',
  });
  const hash = createHash('sha256');
  const write = (text) => {
    hash.update(text);
    if (!res.writableEnded) res.write(text);
  };
  const gone = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) gone.abort();
  });
  let status = result.status;
  try {
    await result.stream(write, gone.signal);
  } catch (error) {
    process.stderr.write(`rag server.mjs: stream cut: ${error?.message ?? error}\n`);
    // 499: the caller closed the connection (nginx's code), recorded as such.
    status = gone.signal.aborted ? 499 : (error?.status ?? 502);
    write(
      `data: ${JSON.stringify({ error: openAiError(error instanceof Error ? error : new Error(String(error))) })}\n\n`,
    );
  }
  let record = null;
  try {
    if (audit === null) throw new AuditLogError('the audit log is not open');
    // The hash covers every byte sent, [DONE] included, which is sent only once the record
    // holding it is written: a stream without a record never ends in [DONE].
    const done = 'data: [DONE]\n\n';
    if (status === result.status) hash.update(done);
    record = await audit.append({
      caller,
      method: req.method,
      endpoint: req.url.split('?')[0],
      status,
      requestSha256: request.sha256,
      responseSha256: hash.digest('hex'),
      documents: result.documents,
    });
    if (status === result.status && !res.writableEnded) res.write(done);
    res.addTrailers({ 'x-apertus-audit-seq': String(record.seq) });
  } catch (error) {
    process.stderr.write(`rag server.mjs: audit record not written: ${error.message}\n`);
    const refused = {
      message: `the answer is not on record: its audit record could not be written (${error.message})`,
      type: 'server_error',
      param: null,
      code: 'audit_unavailable',
    };
    if (!res.writableEnded) res.write(`data: ${JSON.stringify({ error: refused })}\n\n`);
  }
  res.end();
  return { route: route?.pattern ?? 'unmatched', status, caller, seq: record?.seq ?? null };
}

async function health(res) {
  if (state !== 'ready' || shuttingDown) {
    send(
      res,
      503,
      JSON.stringify({ status: shuttingDown ? 'stopping' : state, detail: stateDetail }),
      'application/json',
    );
    return 503;
  }
  const runtimeState = await checkRuntime();
  const stats = store.stats();
  const body = {
    status: runtimeState.ok ? 'ok' : 'runtime-unavailable',
    ...(runtimeState.ok ? {} : { detail: runtimeState.detail }),
    store: store.kind,
    embeddingModel: store.lock.embeddingModel,
    dimension: store.lock.dimension,
    documents: stats.documents,
    chunks: stats.chunks,
    auditSeq: audit.seq,
  };
  const status = runtimeState.ok ? 200 : 503;
  send(res, status, JSON.stringify(body), 'application/json');
  return status;
}

const startedAt = Date.now();

const server = createServer((req, res) => {
  const started = process.hrtime.bigint();
  const path = (req.url ?? '/').split('?')[0];
  inFlight += 1;
  const finish = (route, status, extra = '') => {
    inFlight -= 1;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    metrics.observe(route, req.method, status, seconds);
    log(`${req.method} ${path} ${status} ${(seconds * 1000).toFixed(1)}ms${extra}`);
  };
  let work;
  if (req.method === 'GET' && path === '/health') {
    req.resume();
    work = health(res).then((status) => finish('/health', status));
  } else if (req.method === 'GET' && path === '/metrics') {
    req.resume();
    work = metrics.render().then((text) => {
      send(res, 200, text, metrics.contentType);
      finish('/metrics', 200);
    });
  } else {
    work = serveAudited(req, res, path).then((r) =>
      finish(r.route, r.status, ` caller=${r.caller} audit=${r.seq ?? 'none'}`),
    );
  }
  work.catch((error) => {
    process.stderr.write(`rag server.mjs: ${error?.stack ?? error}\n`);
    if (!res.headersSent)
      send(
        res,
        500,
        JSON.stringify({
          error: { message: 'internal error', type: 'server_error', param: null, code: 'internal_error' },
        }),
        'application/json',
      );
    finish('error', 500);
  });
});
server.keepAliveTimeout = 5000;
server.headersTimeout = 30_000;
server.requestTimeout = options.runtimeTimeoutMs + 60_000;

// ---- start and stop ------------------------------------------------------------------------

async function shutdown(signal) {
  if (shuttingDown) return;
  shuttingDown = true;
  log(`${signal}: shutting down (${inFlight} requests in flight)`);
  const force = setTimeout(() => {
    releaseDataDir();
    process.exit(0);
  }, SHUTDOWN_GRACE_MS);
  force.unref();
  server.close();
  server.closeIdleConnections();
  while (inFlight > 0) await new Promise((r) => setTimeout(r, 50));
  await audit?.close();
  await store?.close();
  releaseDataDir();
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));

/**
 * The pgvector connection URL: from the environment, else the URL file, else the loopback
 * default. A URL file others may read is refused: it may hold the database password.
 */
function pgvectorUrl() {
  const fromEnv = process.env.APERTUS_PGVECTOR_URL;
  if (fromEnv) return fromEnv;
  const file = options.pgvectorUrlFile;
  if (existsSync(file)) {
    if ((statSync(file).mode & 0o007) !== 0) {
      throw new Error(
        `${file} may be read by every user of the host; chmod o-rwx it (it may hold the database password)`,
      );
    }
    const url = readFileSync(file, 'utf8').split('\n')[0].trim();
    if (!/^postgres(ql)?:\/\//.test(url)) throw new Error(`${file} must hold one postgresql:// URL`);
    return url;
  }
  return `postgresql://postgres@127.0.0.1:${options.pgvectorPort}/postgres`;
}

async function openStore() {
  const lock = { embeddingModel: options.embeddingModel, dimension: options.dimension };
  if (options.store === 'pgvector') {
    const { PgvectorStore } = await import('./pgvector-store.mjs');
    return PgvectorStore.open({
      dir: options.dataDir,
      url: pgvectorUrl(),
      collection: options.pgvectorCollection,
      ...lock,
    });
  }
  if (options.store === 'qdrant') {
    return QdrantVectorStore.open({
      dir: options.dataDir,
      url: options.qdrantUrl,
      collection: options.qdrantCollection,
      ...lock,
    });
  }
  return FileVectorStore.open({ dir: options.dataDir, ...lock });
}

async function reindex() {
  state = 'reindexing';
  stateDetail = `waiting for the runtime at ${embedder.url} to re-embed the collection with ${options.embeddingModel}`;
  for (;;) {
    if ((await embedder.healthy()).ok) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  stateDetail = `re-embedding the collection with ${options.embeddingModel}`;
  log(stateDetail);
  const reindexStore =
    options.store === 'pgvector'
      ? async (args) =>
          (await import('./pgvector-store.mjs')).reindexPgvectorStore({
            ...args,
            url: pgvectorUrl(),
            collection: options.pgvectorCollection,
          })
      : reindexFileVectorStore;
  const result = await reindexStore({
    dir: options.dataDir,
    embeddingModel: options.embeddingModel,
    dimension: options.dimension,
    batchSize: options.embedBatch,
    embed: async (texts) => {
      const vectors = [];
      for (let start = 0; start < texts.length; start += options.embedBatch) {
        const batch = await embedder.embed(
          options.embeddingModel,
          texts.slice(start, start + options.embedBatch).map((t) => `${options.passagePrefix}${t}`),
        );
        vectors.push(...batch.vectors);
      }
      return vectors;
    },
    onProgress: (done, total) => {
      stateDetail = `re-embedding the collection with ${options.embeddingModel}: ${done} of ${total} chunks`;
    },
  });
  log(
    `re-indexed ${result.documents} documents (${result.chunks} chunks) with ${options.embeddingModel}, dimension ${options.dimension}`,
  );
}

let checkpointKey = null;
try {
  if (options.checkpointKey !== null) checkpointKey = readCheckpointKey(options.checkpointKey);
} catch (error) {
  fail(2, `--checkpoint-key: ${error.message}`);
}

try {
  takeDataDir();
  audit = AuditLog.open(options.auditLog, {
    onNotice: (message) => process.stderr.write(`rag server.mjs: ${message}\n`),
    checkpoints: checkpointKey === null ? null : { key: checkpointKey, every: options.checkpointEvery },
  });
} catch (error) {
  releaseDataDir();
  fail(1, error.message);
}

let needsReindex = false;
try {
  store = await openStore();
} catch (error) {
  if (error instanceof CollectionLockError && options.reindex) needsReindex = true;
  else {
    releaseDataDir();
    fail(error instanceof CollectionLockError ? 2 : 1, error.message);
  }
}
if (store !== null && options.reindex) {
  log(
    `--reindex: the collection is already locked to ${options.embeddingModel} (dimension ${options.dimension}); nothing to do`,
  );
}

server.on('error', (error) => {
  releaseDataDir();
  fail(1, `cannot listen on ${options.host}:${options.port}: ${error.message}`);
});

server.listen(options.port, options.host, () => {
  const collection = store?.lock ?? (options.store === 'file' ? readCollection(options.dataDir) : null);
  log(
    `listening on http://${options.host}:${options.port} (${options.store} store, collection ${options.dataDir}: ${collection?.embeddingModel}, ` +
      `dimension ${collection?.dimension}; runtime ${runtime.url}; audit log ${options.auditLog} at seq ${audit.seq}, ` +
      `${checkpointKey === null ? 'no checkpoints' : `checkpoints signed by ${checkpointKey.keyId} every ${options.checkpointEvery} records`})`,
  );
  if (!needsReindex) {
    state = 'ready';
    stateDetail = 'ready';
    return;
  }
  reindex()
    .then(async () => {
      store = await openStore();
      state = 'ready';
      stateDetail = 'ready';
    })
    .catch((error) => {
      releaseDataDir();
      fail(1, `re-indexing failed; the collection is unchanged: ${error.message}`);
    });
});
