/**
 * Checks of a server that speaks the OpenAI API on the host's loopback: its model listed,
 * a streamed chat completion (tokens, time to first token, tokens per second), embeddings
 * of the declared dimension, and the same listing and chat for each LoRA adapter's id.
 * Every model server kind is verified with these.
 */
import { httpRequest, httpRequestStream, type PinnedTls } from '../host/http-over-transport.js';
import type { Transport } from '../host/transport.js';
import type { VerifySpec } from '../layout/types.js';
import { RAG_CALLER_HEADER } from './rag/rag-service.js';
import { attempt, type ServiceCheck } from './service-check.js';

const REQUEST_TIMEOUT_MS = 120_000;
/** Listing models is cheap: a server that takes longer is not serving. */
const LIST_TIMEOUT_MS = 30_000;
/** Recorded as the caller of verification's requests in the RAG audit log. */
const VERIFY_CALLER = 'apertus-install-verify';

/**
 * Where the checks send their requests: a service's port on the host's loopback (a plain
 * number), or an address the host reaches with TLS and headers of its own (the gateway).
 */
export interface OpenAiEndpoint {
  port: number;
  /** As seen from the host; default 127.0.0.1. */
  host?: string;
  tls?: PinnedTls;
  /** Put before every path: `/rag/COLLECTION` through the gateway. */
  pathPrefix?: string;
  /** Sent with every request instead of the caller header (the gateway's Authorization). */
  headers?: Record<string, string>;
}

/** The request options that reach `via`, for `path`. */
export function requestVia(via: number | OpenAiEndpoint, path: string) {
  const endpoint: OpenAiEndpoint = typeof via === 'number' ? { port: via } : via;
  return {
    port: endpoint.port,
    ...(endpoint.host ? { host: endpoint.host } : {}),
    ...(endpoint.tls ? { tls: endpoint.tls } : {}),
    path: `${endpoint.pathPrefix ?? ''}${path}`,
    headers: endpoint.headers ?? { [RAG_CALLER_HEADER]: VERIFY_CALLER },
  };
}

/** A model server as its checks see it. */
export interface ModelServer {
  name: string;
  port: number;
  modelId: string;
  embeddings: boolean;
  /** The ids its LoRA adapters are served under: each is listed and chatted with too. */
  adapterIds?: readonly string[];
}

/** The model listed, a streamed chat, and embeddings when both the server and the spec have them. */
export async function verifyModelServer(
  transport: Transport,
  server: ModelServer,
  spec: VerifySpec,
  signal?: AbortSignal,
  via: number | OpenAiEndpoint = server.port,
): Promise<ServiceCheck[]> {
  const chatCheck = async (model: string, adapter: boolean): Promise<ServiceCheck> => {
    const check = await attempt('verify.chat', server.name, () =>
      streamedChat(transport, via, {
        model,
        prompt: spec.chat.prompt,
        maxTokens: spec.chat.maxTokens,
        temperature: 0,
        signal,
      }).then((chat) =>
        chat.tokens > 0
          ? {
              status: 'ok',
              detail: `${chat.tokens} tokens, first after ${chat.ttftMs} ms, ${chat.tokensPerSecond} tokens/s`,
              metrics: {
                completionTokens: chat.tokens,
                timeToFirstTokenMs: chat.ttftMs,
                tokensPerSecond: chat.tokensPerSecond,
              },
            }
          : { status: 'fail', detail: 'the stream ended without a token' },
      ),
    );
    return adapter ? { ...check, model, detail: `adapter ${model}: ${check.detail}` } : check;
  };
  const checks = [
    await modelListedCheck(transport, server.name, via, server.modelId, signal),
    await chatCheck(server.modelId, false),
  ];
  for (const id of server.adapterIds ?? []) {
    checks.push(await adapterListedCheck(transport, server.name, via, id, signal));
    checks.push(await chatCheck(id, true));
  }
  const embeddings = spec.embeddings;
  if (embeddings && server.embeddings) {
    checks.push(
      await attempt('verify.embeddings', server.name, async () => {
        const body = (await callJson(transport, via, 'POST', '/v1/embeddings', {
          signal,
          json: { model: server.modelId, input: embeddings.input },
        })) as { data?: Array<{ embedding?: unknown }> };
        const vector = body.data?.[0]?.embedding;
        const length = Array.isArray(vector) ? vector.length : 0;
        const finite =
          Array.isArray(vector) && vector.every((x) => typeof x === 'number' && Number.isFinite(x));
        return length === embeddings.dimension && finite
          ? { status: 'ok', detail: `dimension ${length}`, metrics: { dimension: length } }
          : {
              status: 'fail',
              detail: `dimension ${length}${finite ? '' : ' (non-finite values)'}, expected ${embeddings.dimension}`,
            };
      }),
    );
  }
  return checks;
}

/** /v1/models lists `modelId`. */
export async function modelListedCheck(
  transport: Transport,
  service: string,
  via: number | OpenAiEndpoint,
  modelId: string,
  signal?: AbortSignal,
): Promise<ServiceCheck> {
  return attempt('verify.models', service, async () => {
    const body = (await callJson(transport, via, 'GET', '/v1/models', {
      signal,
      timeoutMs: LIST_TIMEOUT_MS,
    })) as { data?: Array<{ id?: unknown }> };
    const ids = (body.data ?? []).map((m) => String(m.id));
    return ids.includes(modelId)
      ? { status: 'ok', detail: `${modelId} listed` }
      : { status: 'fail', detail: `${modelId} not among [${ids.join(', ')}]` };
  });
}

/** The same for a LoRA adapter's id, the check naming the adapter as its model. */
export async function adapterListedCheck(
  transport: Transport,
  service: string,
  via: number | OpenAiEndpoint,
  adapterId: string,
  signal?: AbortSignal,
): Promise<ServiceCheck> {
  const listed = await modelListedCheck(transport, service, via, adapterId, signal);
  return { ...listed, model: adapterId, detail: `adapter ${listed.detail}` };
}

export interface StreamedChat {
  text: string;
  tokens: number;
  ttftMs: number;
  tokensPerSecond: number;
}

/** A chat completion with `stream: true`: the answer, its token count and its timing. */
export async function streamedChat(
  transport: Transport,
  via: number | OpenAiEndpoint,
  request: {
    model: string;
    prompt: string;
    maxTokens: number;
    temperature: number;
    signal?: AbortSignal | undefined;
  },
): Promise<StreamedChat> {
  const started = Date.now();
  const response = await httpRequestStream(transport, {
    ...requestVia(via, '/v1/chat/completions'),
    method: 'POST',
    json: {
      model: request.model,
      messages: [{ role: 'user', content: request.prompt }],
      max_tokens: request.maxTokens,
      temperature: request.temperature,
      stream: true,
      stream_options: { include_usage: true },
    },
    timeoutMs: REQUEST_TIMEOUT_MS,
    signal: request.signal,
  });
  let pending = '';
  let text = '';
  let firstAt: number | null = null;
  let usageTokens: number | null = null;
  let chunks = 0;
  let error: string | null = null;
  for await (const data of response.body) {
    pending += (data as Buffer).toString('utf8');
    let end = pending.indexOf('\n');
    while (end !== -1) {
      const line = pending.slice(0, end).trim();
      pending = pending.slice(end + 1);
      end = pending.indexOf('\n');
      if (!line.startsWith('data:')) continue;
      const payload = line.slice('data:'.length).trim();
      if (payload === '[DONE]') continue;
      const event = JSON.parse(payload) as {
        choices?: Array<{ delta?: { content?: unknown } }>;
        usage?: { completion_tokens?: unknown };
        error?: { message?: unknown };
      };
      if (event.error) error = String(event.error.message ?? 'error event');
      const content = event.choices?.[0]?.delta?.content;
      if (typeof content === 'string' && content !== '') {
        firstAt ??= Date.now();
        text += content;
        chunks += 1;
      }
      if (typeof event.usage?.completion_tokens === 'number') usageTokens = event.usage.completion_tokens;
    }
  }
  if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${pending.slice(0, 200)}`);
  if (error !== null) throw new Error(`the stream reported an error: ${error}`);
  const tokens = usageTokens ?? chunks;
  const ended = Date.now();
  const ttftMs = (firstAt ?? ended) - started;
  const generationSeconds = Math.max((ended - (firstAt ?? ended)) / 1000, 0.001);
  return {
    text,
    tokens,
    ttftMs,
    tokensPerSecond: tokens > 1 ? Number(((tokens - 1) / generationSeconds).toFixed(1)) : 0,
  };
}

async function callJson(
  transport: Transport,
  via: number | OpenAiEndpoint,
  method: 'GET' | 'POST',
  path: string,
  options: { signal?: AbortSignal | undefined; json?: unknown; timeoutMs?: number },
): Promise<unknown> {
  options.signal?.throwIfAborted();
  const response = await httpRequest(transport, {
    ...requestVia(via, path),
    method,
    ...(options.json === undefined ? {} : { json: options.json }),
    timeoutMs: options.timeoutMs ?? REQUEST_TIMEOUT_MS,
    signal: options.signal,
  });
  if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${response.body.slice(0, 200)}`);
  return JSON.parse(response.body) as unknown;
}
