#!/usr/bin/env node
// apertus gateway: the one service that faces the network. It terminates TLS, checks an API
// key on every request, applies its scopes and limits, routes to the services on 127.0.0.1,
// and writes one hash-chained access-log record per request.
//
// Plain JavaScript with node: built-ins only, like the RAG service: it runs on the
// air-gapped host with the Node binary the bundle ships.
//
//   node server.mjs --listen ADDR:PORT [--listen ...] --keys FILE --access-log FILE
//                   (--tls-cert FILE --tls-key FILE | --insecure-http)
//                   [--upstream MODEL=URL ...] [--rag COLLECTION=URL ...]
//                   [--gateway-token-file FILE] [--metrics-port P] [--checkpoint-key FILE]
//                   [--rate 5] [--burst 20] [--max-body-bytes 16777216]
//                   [--max-concurrent 64] [--max-queue 256] [--max-connections 1024]
//                   [--header-timeout 10] [--request-timeout 60] [--upstream-timeout 600]
//
// Routes (every one needs `Authorization: Bearer KEY`, except GET /health):
//   GET  /health                     {status:'ok'}; says nothing else to the unauthenticated.
//   GET  /v1/models                  the model ids this key may use.
//   POST /v1/chat/completions        scope chat; `model` picks the --upstream; the model
//                                    `rag:COLLECTION` goes to that RAG service (scope rag).
//   POST /v1/embeddings              scope embeddings; `model` picks the --upstream.
//   *    /rag/COLLECTION/v1/...      scope rag:COLLECTION; passed to that RAG service as /v1/...
//                                    (an OpenAI client can use https://HOST/rag/C/v1 as base URL).
//   *    /v1/documents..., /v1/query the RAG API of the only collection (404 with several).
//   GET  /metrics                    scope admin (the same text is on --metrics-port, loopback,
//                                    which also answers GET /health without a key).
// An unknown model is 404 model_not_found. Streaming answers (SSE) are passed through as the
// upstream writes them.
//
// The caller: a client's `x-apertus-caller` and `x-apertus-gateway` headers are removed,
// and so is its Authorization header (the key never leaves the gateway). Upstream requests
// carry `x-apertus-caller: <key name>` and, to RAG services, `x-apertus-gateway: <token>`
// from --gateway-token-file: the RAG service, given the same file, trusts the caller header
// only next to that token, and records any other as a claim (templates/rag/server.mjs).
//
// Access log (--access-log): the RAG audit log's format (templates/rag/audit-log.mjs), one
// record per request once its response has ended: caller is the key name, or
// `unauthenticated`; requestSha256 covers the body bytes read; responseSha256 the bytes
// sent (a stream included). `apertus audit verify` checks it like the RAG log. Requests
// without a valid key beyond the per-address rate get 429 and no record (see handle()).
//
// Exit status: 0 after SIGTERM/SIGINT, 2 for bad arguments, 1 for other start failures.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { parseArgs } from 'node:util';
import { AuditLog, readCheckpointKey, sha256Hex } from '../rag/audit-log.mjs';
import { allows, createKeyStore } from './api-keys.mjs';
import { createConcurrencyLimit, createRateLimiter, QueueFullError } from './limits.mjs';
import { createGatewayMetrics } from './metrics.mjs';

const CALLER_HEADER = 'x-apertus-caller';
const GATEWAY_HEADER = 'x-apertus-gateway';
const COLLECTION = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$/;
/** How long a refused (413) upload is drained before its socket is cut. */
const DRAIN_MS = 2000;
const SHUTDOWN_GRACE_MS = 10_000;
/** Request headers passed upstream; everything else (Authorization, cookies, hop-by-hop) stays here. */
const FORWARDED_HEADERS = ['content-type', 'accept', 'accept-encoding', 'user-agent', 'openai-organization'];
const RESPONSE_HOP_HEADERS = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'proxy-authenticate',
  'trailer',
  'upgrade',
]);

function log(line) {
  process.stdout.write(`${new Date().toISOString()} ${line}\n`);
}

function fail(code, message) {
  process.stderr.write(`gateway server.mjs: ${message}\n`);
  process.exit(code);
}

// ---- options -------------------------------------------------------------------------------

function readOptions() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        listen: { type: 'string', multiple: true },
        keys: { type: 'string' },
        'access-log': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'insecure-http': { type: 'boolean', default: false },
        upstream: { type: 'string', multiple: true, default: [] },
        rag: { type: 'string', multiple: true, default: [] },
        'gateway-token-file': { type: 'string' },
        'metrics-port': { type: 'string' },
        'checkpoint-key': { type: 'string' },
        rate: { type: 'string', default: '5' },
        burst: { type: 'string', default: '20' },
        'max-body-bytes': { type: 'string', default: String(16 * 1024 * 1024) },
        'max-concurrent': { type: 'string', default: '64' },
        'max-queue': { type: 'string', default: '256' },
        'max-connections': { type: 'string', default: '1024' },
        'header-timeout': { type: 'string', default: '10' },
        'request-timeout': { type: 'string', default: '60' },
        'upstream-timeout': { type: 'string', default: '600' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    fail(2, error.message);
  }
  const number = (name, { min = 1, max = 1e12, integer = true } = {}) => {
    const text = values[name];
    const pattern = integer ? /^[0-9]+$/ : /^[0-9]+(\.[0-9]+)?$/;
    if (!pattern.test(text) || Number(text) < min || Number(text) > max)
      fail(
        2,
        `--${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got "${text}"`,
      );
    return Number(text);
  };
  const required = (name) => {
    if (values[name] === undefined) fail(2, `--${name} is required`);
    return values[name];
  };
  const listen = (values.listen ?? []).map((text) => {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+|localhost)):([0-9]{1,5})$/.exec(text);
    if (m === null || Number(m[3]) > 65535)
      fail(2, `--listen must be ADDRESS:PORT (IPv6 in brackets), got "${text}"`);
    return { host: m[1] ?? m[2], port: Number(m[3]) };
  });
  if (listen.length === 0) fail(2, '--listen ADDRESS:PORT is required');
  const loopbackUrl = (flag, text) => {
    let url;
    try {
      url = new URL(text);
    } catch {
      fail(2, `${flag}: "${text}" is not a URL`);
    }
    if (url.protocol !== 'http:' || !['127.0.0.1', '[::1]', 'localhost'].includes(url.hostname))
      fail(2, `${flag}: upstreams are plain HTTP on loopback, got "${text}"`);
    return url;
  };
  const pairs = (flag, list, keyPattern) =>
    new Map(
      list.map((text) => {
        const i = text.indexOf('=');
        const key = i > 0 ? text.slice(0, i) : '';
        if (!keyPattern.test(key)) fail(2, `--${flag} must be NAME=URL, got "${text}"`);
        return [key, loopbackUrl(`--${flag}`, text.slice(i + 1))];
      }),
    );
  const tls = values['tls-cert'] !== undefined || values['tls-key'] !== undefined;
  if (tls && (values['tls-cert'] === undefined || values['tls-key'] === undefined))
    fail(2, '--tls-cert and --tls-key go together');
  if (tls && values['insecure-http']) fail(2, '--insecure-http and --tls-cert exclude each other');
  if (!tls && !values['insecure-http'])
    fail(
      2,
      'give --tls-cert and --tls-key, or --insecure-http to serve plain HTTP (keys then cross the network in clear)',
    );
  return {
    listen,
    keys: required('keys'),
    accessLog: required('access-log'),
    tls: tls ? { cert: values['tls-cert'], key: values['tls-key'] } : null,
    upstreams: pairs('upstream', values.upstream, MODEL_ID),
    rags: pairs('rag', values.rag, COLLECTION),
    gatewayTokenFile: values['gateway-token-file'],
    metricsPort: values['metrics-port'] === undefined ? null : number('metrics-port', { min: 0, max: 65535 }),
    checkpointKey: values['checkpoint-key'],
    rate: number('rate', { integer: false, min: 0.001, max: 1e6 }),
    burst: number('burst', { max: 1e6 }),
    maxBodyBytes: number('max-body-bytes', { max: 1024 * 1024 * 1024 }),
    maxConcurrent: number('max-concurrent', { max: 100_000 }),
    maxQueue: number('max-queue', { min: 0, max: 1_000_000 }),
    maxConnections: number('max-connections', { max: 1_000_000 }),
    headerTimeoutMs: number('header-timeout', { max: 3600 }) * 1000,
    requestTimeoutMs: number('request-timeout', { max: 86_400 }) * 1000,
    upstreamTimeoutMs: number('upstream-timeout', { max: 86_400 }) * 1000,
  };
}

const options = readOptions();

let gatewayToken = null;
if (options.gatewayTokenFile !== undefined) {
  try {
    gatewayToken = readFileSync(options.gatewayTokenFile, 'utf8').trim();
  } catch (error) {
    fail(2, `cannot read --gateway-token-file: ${error.message}`);
  }
  if (!/^[A-Za-z0-9_-]{32,}$/.test(gatewayToken))
    fail(2, '--gateway-token-file must hold at least 32 base64url characters');
}

let tlsMaterial = null;
if (options.tls !== null) {
  try {
    tlsMaterial = { cert: readFileSync(options.tls.cert), key: readFileSync(options.tls.key) };
  } catch (error) {
    fail(2, `cannot read the TLS certificate or key: ${error.message}`);
  }
}

let checkpoints = null;
if (options.checkpointKey !== undefined) {
  try {
    checkpoints = { key: readCheckpointKey(options.checkpointKey), every: 100 };
  } catch (error) {
    fail(2, error.message);
  }
}

let accessLog;
try {
  accessLog = AuditLog.open(options.accessLog, { checkpoints, onNotice: (m) => log(m) });
} catch (error) {
  fail(1, `cannot open the access log: ${error.message}`);
}

const keyStore = createKeyStore(options.keys, { onNotice: (m) => log(m) });
const rateLimiter = createRateLimiter({ rate: options.rate, burst: options.burst });
const concurrency = createConcurrencyLimit({ limit: options.maxConcurrent, queue: options.maxQueue });
const metrics = createGatewayMetrics();
let shuttingDown = false;
let openConnections = 0;

// ---- errors in OpenAI's shape --------------------------------------------------------------

class GatewayError extends Error {
  constructor(
    status,
    message,
    { type = 'invalid_request_error', code = null, param = null, headers = {} } = {},
  ) {
    super(message);
    this.status = status;
    this.type = type;
    this.code = code;
    this.param = param;
    this.headers = headers;
  }
}

const unauthorized = (message) =>
  new GatewayError(401, message, { code: 'invalid_api_key', headers: { 'www-authenticate': 'Bearer' } });

function errorBody(error) {
  return JSON.stringify({
    error: { message: error.message, type: error.type, param: error.param, code: error.code },
  });
}

// ---- routing -------------------------------------------------------------------------------

/**
 * Where a request goes: { need, url (upstream base), path (upstream path), byModel, rag }.
 * byModel: the body's `model` decides (chat, embeddings). Returns a GatewayError for a path
 * nothing serves.
 */
function routeByPath(method, path) {
  // `..` would be resolved by the upstream URL and reach paths no route names (/metrics).
  if (/(^|\/)(\.|%2e){1,2}(\/|$)/i.test(path) || /%2f|%5c|\\/i.test(path))
    return new GatewayError(400, 'the path has dot segments or encoded slashes', { code: 'invalid_path' });
  const ragPrefix = /^\/rag\/([^/]+)(\/v1\/.*)$/.exec(path);
  if (ragPrefix !== null) {
    const collection = ragPrefix[1];
    const url = COLLECTION.test(collection) ? options.rags.get(collection) : undefined;
    if (url === undefined)
      return new GatewayError(404, `no RAG collection "${collection}"`, { code: 'collection_not_found' });
    return { need: `rag:${collection}`, url, path: ragPrefix[2], rag: true };
  }
  if (path === '/v1/chat/completions' || path === '/v1/embeddings') {
    if (method !== 'POST') return new GatewayError(405, `${method} is not allowed on ${path}`);
    return { need: path === '/v1/embeddings' ? 'embeddings' : 'chat', path, byModel: true };
  }
  if (/^\/v1\/(documents(\/.*)?|query)$/.test(path)) {
    if (options.rags.size !== 1) {
      return new GatewayError(
        404,
        options.rags.size === 0
          ? 'no RAG service behind this gateway'
          : `several RAG collections are served; use /rag/COLLECTION${path}`,
        { code: 'collection_not_found' },
      );
    }
    const [collection, url] = [...options.rags][0];
    return { need: `rag:${collection}`, url, path, rag: true };
  }
  return new GatewayError(404, `no route for ${method} ${path}`, {
    type: 'not_found_error',
    code: 'not_found',
  });
}

/** For byModel routes: the upstream the body's `model` names. */
function routeByModel(route, body) {
  let parsed;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return new GatewayError(400, 'the request body is not JSON', { code: 'invalid_json' });
  }
  const model = parsed?.model;
  if (typeof model !== 'string' || model === '')
    return new GatewayError(400, 'you must provide a model parameter', {
      param: 'model',
      code: 'missing_model',
    });
  const rag = /^rag:(.+)$/.exec(model);
  if (rag !== null && route.need === 'chat') {
    const url = options.rags.get(rag[1]);
    // The RAG service serves one chat model and refuses any other id (404 model_not_found), so
    // `rag:C` names the route only: the body goes on without it and the service uses its own.
    if (url !== undefined) {
      const { model: _routed, ...rest } = parsed;
      const forwarded = Buffer.from(JSON.stringify(rest));
      return { need: `rag:${rag[1]}`, url, path: route.path, rag: true, body: forwarded };
    }
  }
  const url = options.upstreams.get(model);
  if (url === undefined) {
    return new GatewayError(
      404,
      `The model \`${model.slice(0, 200)}\` does not exist or you do not have access to it.`,
      {
        param: 'model',
        code: 'model_not_found',
      },
    );
  }
  return { ...route, url, rag: false };
}

function modelsFor(scopes) {
  const data = [];
  if (allows(scopes, 'chat') || allows(scopes, 'embeddings'))
    for (const id of options.upstreams.keys())
      data.push({ id, object: 'model', created: 0, owned_by: 'apertus' });
  for (const collection of options.rags.keys())
    if (allows(scopes, `rag:${collection}`))
      data.push({ id: `rag:${collection}`, object: 'model', created: 0, owned_by: 'apertus' });
  return { object: 'list', data };
}

// ---- the request path ----------------------------------------------------------------------

/**
 * Reads the body, at most maxBodyBytes. Resolves {body, sha256} or {tooLarge, sha256}; a
 * declared Content-Length over the limit is refused before a byte is read.
 */
function readBody(req) {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > options.maxBodyBytes)
    return Promise.resolve({ tooLarge: true, sha256: sha256Hex('') });
  return new Promise((resolve) => {
    const hash = createHash('sha256');
    const chunks = [];
    let size = 0;
    let settled = false;
    const settle = (result) => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      chunks.length = 0;
      resolve({ ...result, sha256: hash.digest('hex') });
    };
    const onData = (chunk) => {
      size += chunk.length;
      hash.update(chunk);
      if (size > options.maxBodyBytes) settle({ tooLarge: true });
      else chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => settle({ body: Buffer.concat(chunks) }));
    // The client went away (or the request timeout cut it) before the body was complete.
    req.once('error', () => settle({ aborted: true }));
    req.once('close', () => settle({ aborted: true }));
  });
}

/**
 * Answers an error. With `drain`, the rest of a refused upload is read and dropped (Node does
 * that for an unread body of a keep-alive response) for at most DRAIN_MS, then the socket is
 * cut: the client reads its 413 or 401 instead of a reset, and a sender that never stops
 * costs no memory and at most DRAIN_MS of bandwidth. `connection: close` is not sent: Node
 * would destroy the socket as soon as the answer is written, unread body and all, and the
 * client, still writing, would get EPIPE instead of the answer.
 */
function sendError(req, res, error, { drain = false } = {}) {
  const body = Buffer.from(errorBody(error));
  res.writeHead(error.status, {
    'content-type': 'application/json',
    'content-length': body.length,
    ...error.headers,
  });
  res.end(body);
  if (drain && !req.complete) {
    const cut = setTimeout(() => req.socket.destroy(), DRAIN_MS);
    cut.unref();
    req.once('end', () => clearTimeout(cut));
    req.socket.once('close', () => clearTimeout(cut));
    req.resume();
  }
  return body;
}

function sendJson(res, status, value) {
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
  return body;
}

function upstreamHeaders(req, caller, rag, length) {
  const headers = {};
  for (const name of FORWARDED_HEADERS)
    if (req.headers[name] !== undefined) headers[name] = req.headers[name];
  headers[CALLER_HEADER] = caller;
  if (rag && gatewayToken !== null) headers[GATEWAY_HEADER] = gatewayToken;
  headers['content-length'] = String(length);
  return headers;
}

/**
 * Sends the request upstream and passes the answer through as it comes. Resolves
 * {status, responseSha256} exactly once, however it ends (answered, upstream failed, client
 * gone mid-stream), so the caller always releases its concurrency slot.
 */
function proxy(req, res, route, caller, body) {
  return new Promise((resolve) => {
    const target = new URL(route.path, route.url);
    target.search = new URL(req.url ?? '/', 'http://x').search;
    const hash = createStreamingHash();
    let settled = false;
    const finish = (status, sent = null) => {
      if (settled) return;
      settled = true;
      res.off('close', clientGone);
      resolve({ status, responseSha256: sent === null ? hash.digest() : sha256Hex(sent) });
    };
    const upstream = httpRequest(target, {
      method: req.method,
      headers: upstreamHeaders(req, caller, route.rag, body.length),
      timeout: options.upstreamTimeoutMs,
    });
    // 499 (nginx's "client closed request") when the client leaves before the answer ends.
    const clientGone = () => {
      upstream.destroy(new Error('the client went away'));
      finish(499);
    };
    res.once('close', clientGone);
    upstream.once('timeout', () => upstream.destroy(new Error('the upstream timed out')));
    upstream.once('error', (error) => {
      if (settled) return;
      if (!res.headersSent) {
        const sent = sendError(
          req,
          res,
          new GatewayError(502, `the upstream service did not answer: ${error.message}`, {
            type: 'server_error',
            code: 'upstream_unavailable',
          }),
        );
        finish(502, sent);
      } else {
        res.destroy();
        finish(res.statusCode);
      }
    });
    upstream.once('response', (answer) => {
      const status = answer.statusCode ?? 502;
      const headers = {};
      for (const [name, value] of Object.entries(answer.headers))
        if (!RESPONSE_HOP_HEADERS.has(name)) headers[name] = value;
      res.writeHead(status, headers);
      // Server-sent events are flushed chunk by chunk: no buffering here.
      answer.on('data', (chunk) => {
        hash.update(chunk);
        if (!res.write(chunk)) answer.pause();
      });
      res.on('drain', () => answer.resume());
      answer.once('end', () => {
        res.end();
        finish(status);
      });
      // The upstream cut its answer short: the client must not take it for a whole one.
      answer.once('close', () => {
        if (!answer.complete && !settled) {
          res.destroy();
          finish(status);
        }
      });
    });
    upstream.end(body);
  });
}

/** A running digest of a response, without holding the stream. */
function createStreamingHash() {
  const h = createHash('sha256');
  return {
    update: (chunk) => h.update(chunk),
    digest: () => h.digest('hex'),
  };
}

async function handle(req, res, path) {
  let caller = 'unauthenticated';
  let requestSha256 = sha256Hex('');
  const respond = (status, sent) => ({ caller, status, requestSha256, responseSha256: sha256Hex(sent) });

  if (shuttingDown) {
    return respond(
      503,
      sendError(req, res, new GatewayError(503, 'the gateway is shutting down', { type: 'server_error' })),
    );
  }
  const auth = await keyStore.authenticate(req.headers.authorization);
  if (!auth.ok) {
    metrics.authFailure(auth.reason);
    // Failures share one bucket per source address (no key name has an '@'). Beyond it they
    // get 429 and no access-log record: a flood without a key must not grow the log or
    // cost an fsync each. The metric above still counts every one.
    const flood = rateLimiter.take(`unauthenticated@${req.socket.remoteAddress}`);
    if (!flood.ok) {
      const error = new GatewayError(429, 'Too many requests without a valid API key.', {
        type: 'requests',
        code: 'rate_limit_exceeded',
        headers: { 'retry-after': String(flood.retryAfterSeconds) },
      });
      return { ...respond(429, sendError(req, res, error, { drain: true })), unlogged: true };
    }
    const error =
      auth.reason === 'unavailable'
        ? new GatewayError(503, auth.message, { type: 'server_error', code: 'keys_unavailable' })
        : unauthorized(auth.message);
    return respond(error.status, sendError(req, res, error, { drain: true }));
  }
  caller = auth.name;

  const limited = rateLimiter.take(caller);
  if (!limited.ok) {
    metrics.rateLimited(caller);
    const error = new GatewayError(
      429,
      `Rate limit reached for key "${caller}"; retry after ${limited.retryAfterSeconds} s.`,
      {
        type: 'requests',
        code: 'rate_limit_exceeded',
        headers: { 'retry-after': String(limited.retryAfterSeconds) },
      },
    );
    return respond(429, sendError(req, res, error, { drain: true }));
  }

  if (req.method === 'GET' && path === '/v1/models') {
    req.resume();
    return respond(200, sendJson(res, 200, modelsFor(auth.scopes)));
  }
  if (req.method === 'GET' && path === '/metrics') {
    req.resume();
    if (!allows(auth.scopes, 'admin')) {
      const error = new GatewayError(403, 'metrics need a key with the admin scope', {
        code: 'insufficient_permissions',
      });
      return respond(403, sendError(req, res, error));
    }
    const text = Buffer.from(metricsText());
    res.writeHead(200, {
      'content-type': 'text/plain; version=0.0.4; charset=utf-8',
      'content-length': text.length,
    });
    res.end(text);
    return respond(200, text);
  }

  let route = routeByPath(req.method, path);
  if (route instanceof GatewayError)
    return respond(route.status, sendError(req, res, route, { drain: true }));
  // The scope a path alone decides is checked before the body is read.
  if (!route.byModel && !allows(auth.scopes, route.need))
    return respond(403, forbid(req, res, auth.name, route.need));
  if (route.byModel && !allows(auth.scopes, route.need) && !hasAnyRag(auth.scopes))
    return respond(403, forbid(req, res, auth.name, route.need));

  const request = await readBody(req);
  requestSha256 = request.sha256;
  // 499 (nginx's "client closed request"): logged, never sent.
  if (request.aborted) return { caller, status: 499, requestSha256, responseSha256: sha256Hex('') };
  if (request.tooLarge) {
    const error = new GatewayError(413, `the request body is over ${options.maxBodyBytes} bytes`, {
      code: 'request_too_large',
    });
    return respond(413, sendError(req, res, error, { drain: true }));
  }
  if (route.byModel) {
    route = routeByModel(route, request.body);
    if (route instanceof GatewayError) return respond(route.status, sendError(req, res, route));
    if (!allows(auth.scopes, route.need)) return respond(403, forbid(req, res, auth.name, route.need));
  }

  const gone = new AbortController();
  res.once('close', () => gone.abort());
  let release;
  try {
    release = await concurrency.acquire(gone.signal);
  } catch (error) {
    if (!(error instanceof QueueFullError))
      return { caller, status: 499, requestSha256, responseSha256: sha256Hex('') };
    const busy = new GatewayError(503, 'The gateway is at capacity; retry shortly.', {
      type: 'server_error',
      code: 'server_overloaded',
      headers: { 'retry-after': '1' },
    });
    return respond(503, sendError(req, res, busy));
  }
  try {
    const result = await proxy(req, res, route, caller, route.body ?? request.body);
    return { caller, status: result.status, requestSha256, responseSha256: result.responseSha256 };
  } finally {
    release();
  }
}

function hasAnyRag(scopes) {
  return [...scopes].some((s) => s === 'rag' || s.startsWith('rag:'));
}

function forbid(req, res, name, need) {
  const error = new GatewayError(403, `The API key "${name}" lacks the scope this request needs: ${need}.`, {
    code: 'insufficient_permissions',
  });
  return sendError(req, res, error, { drain: true });
}

function metricsText() {
  return metrics.render({
    inFlight: concurrency.active,
    queued: concurrency.queued,
    connections: openConnections,
    keys: keyStore.size,
    accessLogSeq: accessLog.seq,
  });
}

// ---- servers -------------------------------------------------------------------------------

const serverOptions = {
  headersTimeout: options.headerTimeoutMs,
  requestTimeout: options.requestTimeoutMs,
  keepAliveTimeout: 5000,
  // How often the header and request timeouts are checked; Node's default is 30 s.
  connectionsCheckingInterval: 1000,
};

function onRequest(req, res) {
  const started = process.hrtime.bigint();
  const path = (req.url ?? '/').split('?')[0];
  if (req.method === 'GET' && path === '/health') {
    req.resume();
    sendJson(res, shuttingDown ? 503 : 200, { status: shuttingDown ? 'stopping' : 'ok' });
    return;
  }
  // Never trust these from a client; the gateway sets them itself.
  delete req.headers[CALLER_HEADER];
  delete req.headers[GATEWAY_HEADER];
  handle(req, res, path)
    .catch((error) => {
      process.stderr.write(`gateway server.mjs: ${error?.stack ?? error}\n`);
      const sent = res.headersSent
        ? Buffer.alloc(0)
        : sendError(req, res, new GatewayError(500, 'internal error', { type: 'server_error' }));
      if (res.headersSent) res.destroy();
      return {
        caller: 'unauthenticated',
        status: 500,
        requestSha256: sha256Hex(''),
        responseSha256: sha256Hex(sent),
      };
    })
    .then(async (r) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.observe(r.caller, path, r.status, seconds);
      let seq = 'none';
      if (r.unlogged) {
        log(
          `${req.method} ${path} ${r.status} ${(seconds * 1000).toFixed(1)}ms caller=${r.caller} log=none (flood)`,
        );
        return;
      }
      try {
        const record = await accessLog.append({
          caller: r.caller,
          method: req.method,
          endpoint: path,
          status: r.status,
          requestSha256: r.requestSha256,
          responseSha256: r.responseSha256,
          documents: [],
        });
        seq = record.seq;
      } catch (error) {
        metrics.accessLogFailure();
        process.stderr.write(`gateway server.mjs: access log record not written: ${error.message}\n`);
      }
      log(`${req.method} ${path} ${r.status} ${(seconds * 1000).toFixed(1)}ms caller=${r.caller} log=${seq}`);
    });
}

const servers = options.listen.map(({ host, port }) => {
  const server =
    tlsMaterial === null
      ? createHttpServer(serverOptions, onRequest)
      : createHttpsServer(
          // A client that never finishes its handshake is cut like one that never sends headers.
          {
            ...serverOptions,
            ...tlsMaterial,
            minVersion: 'TLSv1.2',
            handshakeTimeout: options.headerTimeoutMs,
          },
          onRequest,
        );
  server.maxConnections = options.maxConnections;
  server.on('connection', (socket) => {
    openConnections += 1;
    socket.once('close', () => {
      openConnections -= 1;
    });
  });
  // A client that cannot complete a handshake is not worth a log line.
  server.on('tlsClientError', () => {});
  server.listen(port, host);
  return { server, host };
});

let metricsServer = null;
if (options.metricsPort !== null) {
  metricsServer = createHttpServer((req, res) => {
    req.resume();
    const path = (req.url ?? '/').split('?')[0];
    // Install and status check health here, on loopback in plain HTTP, whatever the listener speaks.
    if (req.method === 'GET' && path === '/health')
      return sendJson(res, shuttingDown ? 503 : 200, { status: shuttingDown ? 'stopping' : 'ok' });
    if (req.method !== 'GET' || path !== '/metrics')
      return sendJson(res, 404, { error: 'only GET /metrics and /health' });
    const text = Buffer.from(metricsText());
    res.writeHead(200, {
      'content-type': 'text/plain; version=0.0.4; charset=utf-8',
      'content-length': text.length,
    });
    res.end(text);
  });
  metricsServer.listen(options.metricsPort, '127.0.0.1');
}

Promise.all([
  ...servers.map(
    ({ server }) => new Promise((resolve, reject) => server.once('listening', resolve).once('error', reject)),
  ),
  ...(metricsServer
    ? [new Promise((resolve, reject) => metricsServer.once('listening', resolve).once('error', reject))]
    : []),
])
  .then(() => {
    // Tests and the installer read the bound ports from this line (ports given as 0 included).
    const bound = servers.map(({ server }) => {
      const a = server.address();
      return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
    });
    const metricsAt = metricsServer ? ` metrics=127.0.0.1:${metricsServer.address().port}` : '';
    log(`listening ${tlsMaterial ? 'https' : 'http'}=${bound.join(',')}${metricsAt}`);
  })
  .catch((error) => fail(1, `cannot listen: ${error.message}`));

async function shutdown(signal) {
  if (shuttingDown) return;
  shuttingDown = true;
  log(`${signal}: shutting down (${concurrency.active} requests in flight)`);
  const force = setTimeout(() => process.exit(0), SHUTDOWN_GRACE_MS);
  force.unref();
  const closed = Promise.all(servers.map(({ server }) => new Promise((resolve) => server.close(resolve))));
  for (const { server } of servers) server.closeIdleConnections();
  await closed;
  metricsServer?.close();
  await accessLog.close().catch(() => {});
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
