// Calls to the model runtime (our llamacpp server or vLLM): OpenAI-compatible JSON over HTTP.
//
// One connection per call: the runtime is on loopback, where a connection costs a fraction
// of a millisecond, and a fresh one never races the runtime's keep-alive timeout closing an
// idle socket under us.

import { request } from 'node:http';

/** The runtime's 4xx error, kept whole so the caller sees its code and param; 5xx become 502. */
function upstreamFailure(method, path, status, json, text) {
  const error = json?.error;
  const message = error?.message ?? text.slice(0, 300);
  const client = status >= 400 && status < 500;
  return new RuntimeError(
    client ? status : 502,
    client && typeof message === 'string'
      ? message
      : `the runtime answered ${method} ${path} with HTTP ${status}: ${message}`,
    {
      upstreamStatus: status,
      upstreamError: client && error !== null && typeof error === 'object' ? error : null,
    },
  );
}

/** Server-sent events from a response, as parsed `data:` payloads; `[DONE]` ends them. */
async function* sseData(res) {
  let buffered = '';
  for await (const chunk of res) {
    buffered += chunk.toString('utf8');
    for (let end = buffered.indexOf('\n\n'); end !== -1; end = buffered.indexOf('\n\n')) {
      const event = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      const data = event
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trimStart())
        .join('\n');
      if (data === '') continue;
      if (data === '[DONE]') return;
      yield JSON.parse(data);
    }
  }
  throw new RuntimeError(502, 'the runtime ended the stream without [DONE]');
}

export class RuntimeError extends Error {
  /** status: what the RAG service answers its caller (502 unreachable, 504 timeout, or the runtime's 4xx). */
  constructor(
    status,
    message,
    { upstreamStatus = null, type = 'upstream_error', upstreamError = null } = {},
  ) {
    super(message);
    this.status = status;
    this.upstreamStatus = upstreamStatus;
    this.type = type;
    /** The runtime's own OpenAI error object on a 4xx, passed to the caller as it is (code, param). */
    this.upstreamError = upstreamError;
  }
}

export function createRuntimeClient({ url, timeoutMs }) {
  const base = new URL(url);
  if (base.protocol !== 'http:') throw new Error(`--runtime-url must be http://HOST:PORT, got ${url}`);
  const prefix = base.pathname.replace(/\/$/, '');

  /** The call's timeout and its connection errors, as RuntimeErrors; returns the timer to clear on an answer. */
  function guard(req, target, timeout, reject) {
    const timer = setTimeout(() => {
      req.destroy(
        new RuntimeError(504, `${target} did not answer within ${timeout} ms`, { type: 'upstream_timeout' }),
      );
    }, timeout);
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(
        error instanceof RuntimeError
          ? error
          : new RuntimeError(
              502,
              `the runtime at ${base.origin} cannot be reached (${target}: ${error.code ?? error.message})`,
              { type: 'runtime_unavailable' },
            ),
      );
    });
    return timer;
  }

  function call(method, path, body, { timeout = timeoutMs, signal } = {}) {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const target = `${method} ${base.origin}${prefix}${path}`;
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: base.hostname,
          port: base.port || 80,
          method,
          path: `${prefix}${path}`,
          agent: false,
          signal,
          headers: {
            connection: 'close',
            accept: 'application/json',
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          },
        },
        (res) => {
          const chunks = [];
          res.on('data', (chunk) => chunks.push(chunk));
          res.on('error', (error) => reject(new RuntimeError(502, `${target}: ${error.message}`)));
          res.on('end', () => {
            clearTimeout(timer);
            const text = Buffer.concat(chunks).toString('utf8');
            let json = null;
            try {
              json = text === '' ? null : JSON.parse(text);
            } catch {
              // Not JSON: reported below with the status.
            }
            resolve({ status: res.statusCode ?? 0, json, text });
          });
        },
      );
      const timer = guard(req, target, timeout, reject);
      req.end(payload);
    });
  }

  /** Throws RuntimeError unless the runtime answered 200 with JSON. */
  async function callJson(method, path, body, options) {
    const response = await call(method, path, body, options);
    if (response.status === 200 && response.json !== null) return response.json;
    throw upstreamFailure(method, path, response.status, response.json, response.text);
  }

  /**
   * A streamed chat: resolves once the runtime answered 200 (after the request waited its
   * turn), with its events; a refusal rejects before anything reached our caller.
   */
  function openChatStream(body, { timeout = timeoutMs } = {}) {
    const payload = Buffer.from(JSON.stringify({ ...body, stream: true }));
    const path = '/v1/chat/completions';
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: base.hostname,
          port: base.port || 80,
          method: 'POST',
          path: `${prefix}${path}`,
          agent: false,
          headers: {
            connection: 'close',
            accept: 'text/event-stream',
            'content-type': 'application/json',
            'content-length': payload.length,
          },
        },
        (res) => {
          clearTimeout(timer);
          // Between two events the runtime may think, but not for longer than a whole call may take.
          res.setTimeout(timeout, () =>
            res.destroy(
              new RuntimeError(504, `the runtime's stream stalled for ${timeout} ms`, {
                type: 'upstream_timeout',
              }),
            ),
          );
          if (res.statusCode === 200) {
            resolve({ events: sseData(res), abort: () => req.destroy() });
            return;
          }
          const chunks = [];
          res.on('data', (chunk) => chunks.push(chunk));
          res.on('error', (error) => reject(new RuntimeError(502, `POST ${path}: ${error.message}`)));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json = null;
            try {
              json = JSON.parse(text);
            } catch {}
            reject(upstreamFailure('POST', path, res.statusCode ?? 0, json, text));
          });
        },
      );
      const timer = guard(req, `POST ${base.origin}${prefix}${path}`, timeout, reject);
      req.end(payload);
    });
  }

  return {
    url: base.origin + prefix,

    async healthy() {
      try {
        const response = await call('GET', '/health', undefined, { timeout: 2000 });
        return response.status === 200
          ? { ok: true }
          : { ok: false, detail: `runtime /health answered HTTP ${response.status}` };
      } catch (error) {
        return { ok: false, detail: error.message };
      }
    },

    /** Vectors for `inputs`, in order, with the model id the runtime reports. */
    async embed(model, inputs) {
      const body = await callJson('POST', '/v1/embeddings', { model, input: inputs });
      const data = Array.isArray(body.data) ? [...body.data].sort((a, b) => a.index - b.index) : [];
      if (data.length !== inputs.length || data.some((d) => !Array.isArray(d.embedding))) {
        throw new RuntimeError(
          502,
          `the runtime returned ${data.length} embeddings for ${inputs.length} inputs`,
        );
      }
      return {
        model: typeof body.model === 'string' ? body.model : null,
        vectors: data.map((d) => Float32Array.from(d.embedding)),
      };
    },

    async chat(body) {
      return callJson('POST', '/v1/chat/completions', body);
    },

    openChatStream,

    /** An embeddings request passed on as the caller sent it (the RAG service's /v1/embeddings). */
    async embeddings(body) {
      return callJson('POST', '/v1/embeddings', body);
    },
  };
}
