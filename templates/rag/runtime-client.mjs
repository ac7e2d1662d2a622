// Calls to the model runtime (our llamacpp server or vLLM): OpenAI-compatible JSON over HTTP.
//
// One connection per call: the runtime is on loopback, where a connection costs a fraction
// of a millisecond, and a fresh one never races the runtime's keep-alive timeout closing an
// idle socket under us.

import { request } from 'node:http';

export class RuntimeError extends Error {
  /** status: what the RAG service answers its caller (502 unreachable, 504 timeout, or the runtime's 4xx). */
  constructor(status, message, { upstreamStatus = null, type = 'upstream_error' } = {}) {
    super(message);
    this.status = status;
    this.upstreamStatus = upstreamStatus;
    this.type = type;
  }
}

export function createRuntimeClient({ url, timeoutMs }) {
  const base = new URL(url);
  if (base.protocol !== 'http:') throw new Error(`--runtime-url must be http://HOST:PORT, got ${url}`);
  const prefix = base.pathname.replace(/\/$/, '');

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
      const timer = setTimeout(() => {
        req.destroy(
          new RuntimeError(504, `${target} did not answer within ${timeout} ms`, {
            type: 'upstream_timeout',
          }),
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
                {
                  type: 'runtime_unavailable',
                },
              ),
        );
      });
      req.end(payload);
    });
  }

  /** Throws RuntimeError unless the runtime answered 200 with JSON. */
  async function callJson(method, path, body, options) {
    const response = await call(method, path, body, options);
    if (response.status === 200 && response.json !== null) return response.json;
    const message = response.json?.error?.message ?? response.text.slice(0, 300);
    const status = response.status >= 400 && response.status < 500 ? response.status : 502;
    throw new RuntimeError(
      status,
      `the runtime answered ${method} ${path} with HTTP ${response.status}: ${message}`,
      {
        upstreamStatus: response.status,
      },
    );
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
  };
}
