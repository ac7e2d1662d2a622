import { verifyAuditLogOnHost } from '../audit/audit-verify.js';
import { httpRequest, httpRequestStream } from '../host/http-over-transport.js';
import type { Transport } from '../host/transport.js';
import type {
  GoldenPrompt,
  ModelServiceSpec,
  RagServiceSpec,
  ServiceSpec,
  VerifySpec,
} from '../layout/types.js';
import { runRagCanary } from './rag/canary.js';
import { RAG_CALLER_HEADER, ragDataPaths } from './rag/rag-service.js';

export type CheckStatus = 'ok' | 'fail';

export type CheckId =
  | 'verify.health'
  | 'verify.models'
  | 'verify.chat'
  | 'verify.embeddings'
  | 'verify.rag-canary'
  | 'verify.golden'
  | 'verify.audit'
  | 'verify.offline';

/** One verification result, as data: the CLI decides how to show it. */
export interface ServiceCheck {
  id: CheckId;
  service: string;
  status: CheckStatus;
  detail: string;
  ms: number;
  metrics?: Record<string, number>;
}

const REQUEST_TIMEOUT_MS = 120_000;
/** Recorded as the caller of verification's requests in the RAG audit log. */
const VERIFY_CALLER = 'apertus-install-verify';

/** Polls /health until the service answers 200 or the deadline passes. */
export async function waitForHealth(
  transport: Transport,
  service: ServiceSpec,
  deadlineMs: number,
  signal?: AbortSignal,
): Promise<ServiceCheck> {
  const started = Date.now();
  let last = 'no answer yet';
  while (Date.now() - started < deadlineMs) {
    signal?.throwIfAborted();
    try {
      const response = await httpRequest(transport, {
        port: service.port,
        method: 'GET',
        path: service.runtime === 'container' ? service.healthPath : '/health',
        timeoutMs: 5_000,
      });
      if (response.status === 200) {
        return check('verify.health', service.name, 'ok', `answered on port ${service.port}`, started);
      }
      last = `HTTP ${response.status}${response.body ? `: ${response.body.slice(0, 160)}` : ''}`;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return check(
    'verify.health',
    service.name,
    'fail',
    `no healthy answer in ${deadlineMs / 1000} s (${last})`,
    started,
  );
}

/**
 * A healthy service's own checks. A model server: its model listed, a streamed chat
 * completion (tokens, time to first token, tokens per second), embeddings of the declared
 * dimension. The RAG service: its chat model listed and the canary round trip.
 */
export async function verifyService(
  transport: Transport,
  service: ServiceSpec,
  spec: VerifySpec,
  signal?: AbortSignal,
): Promise<ServiceCheck[]> {
  // A plain container service (Qdrant, say) has no checks beyond its health path; one
  // that declares the OpenAI API is checked like a model server.
  if (service.runtime === 'container') {
    const { openai } = service;
    if (!openai) return [];
    const server = { name: service.name, port: service.port, embeddings: openai.embeddings };
    return verifyModelService(transport, { ...server, model: { id: openai.modelId } }, spec, signal);
  }
  return service.runtime === 'rag'
    ? verifyRagService(transport, service, signal)
    : verifyModelService(transport, service, spec, signal);
}

async function verifyModelService(
  transport: Transport,
  service: Pick<ModelServiceSpec, 'name' | 'port' | 'embeddings'> & { model: { id: string } },
  spec: VerifySpec,
  signal?: AbortSignal,
): Promise<ServiceCheck[]> {
  const checks = [
    await listedCheck(transport, service.name, service.port, service.model.id, signal),
    await attempt('verify.chat', service.name, () =>
      streamedChat(transport, service.port, {
        model: service.model.id,
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
    ),
  ];
  const embeddings = spec.embeddings;
  if (embeddings && service.embeddings) {
    checks.push(
      await attempt('verify.embeddings', service.name, async () => {
        const body = (await callJson(transport, service.port, 'POST', '/v1/embeddings', signal, {
          model: service.model.id,
          input: embeddings.input,
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

async function verifyRagService(
  transport: Transport,
  service: RagServiceSpec,
  signal?: AbortSignal,
): Promise<ServiceCheck[]> {
  return [
    await listedCheck(transport, service.name, service.port, service.chatModel, signal),
    await runRagCanary(transport, { port: service.port, service: service.name, signal }),
  ];
}

/** The recipe's evaluation suite: each prompt's answer must match its pattern. */
export async function verifyGoldenPrompts(
  transport: Transport,
  services: readonly ServiceSpec[],
  golden: readonly GoldenPrompt[],
  signal?: AbortSignal,
): Promise<ServiceCheck[]> {
  const checks: ServiceCheck[] = [];
  for (const prompt of golden) {
    const service = services.find((s) => s.name === prompt.service);
    checks.push(
      await attempt('verify.golden', prompt.service, async () => {
        if (!service) return { status: 'fail', detail: `${prompt.name}: no service named ${prompt.service}` };
        const chat = await streamedChat(transport, service.port, {
          model:
            service.runtime === 'rag'
              ? service.chatModel
              : service.runtime === 'container'
                ? (service.openai?.modelId ?? '')
                : service.model.id,
          prompt: prompt.prompt,
          maxTokens: prompt.maxTokens,
          temperature: prompt.temperature,
          signal,
        });
        const matched = new RegExp(prompt.expect, 'u').test(chat.text);
        const answer = JSON.stringify(chat.text.length > 80 ? `${chat.text.slice(0, 80)}…` : chat.text);
        return matched
          ? {
              status: 'ok',
              detail: `${prompt.name}: answer matches /${prompt.expect}/`,
              metrics: { completionTokens: chat.tokens, timeToFirstTokenMs: chat.ttftMs },
            }
          : { status: 'fail', detail: `${prompt.name}: answer ${answer} does not match /${prompt.expect}/` };
      }),
    );
  }
  return checks;
}

/** The RAG service's audit log verifies as one unbroken chain holding verification's requests. */
export async function verifyAuditLog(
  transport: Transport,
  root: string,
  service: RagServiceSpec,
  signal?: AbortSignal,
): Promise<ServiceCheck> {
  return attempt('verify.audit', service.name, async () => {
    const logPath = ragDataPaths(root).auditLog;
    const result = await verifyAuditLogOnHost(transport, logPath, { signal });
    if (!result.ok) {
      const broken = result.firstBroken;
      return {
        status: 'fail',
        detail: `${logPath}: record ${broken?.seq ?? '?'} breaks the chain (${broken?.reason ?? 'unknown'}: ${broken?.detail ?? ''})`,
      };
    }
    if (result.records === 0)
      return { status: 'fail', detail: `${logPath} holds no record of verification's requests` };
    return {
      status: 'ok',
      detail: `${result.records} records chain to seq ${result.lastSeq}`,
      metrics: { records: result.records, bytes: result.bytes },
    };
  });
}

interface StreamedChat {
  text: string;
  tokens: number;
  ttftMs: number;
  tokensPerSecond: number;
}

/** A chat completion with `stream: true`: the answer, its token count and its timing. */
async function streamedChat(
  transport: Transport,
  port: number,
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
    port,
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { [RAG_CALLER_HEADER]: VERIFY_CALLER },
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

async function listedCheck(
  transport: Transport,
  service: string,
  port: number,
  modelId: string,
  signal?: AbortSignal,
): Promise<ServiceCheck> {
  return attempt('verify.models', service, async () => {
    const body = (await callJson(transport, port, 'GET', '/v1/models', signal)) as {
      data?: Array<{ id?: unknown }>;
    };
    const ids = (body.data ?? []).map((m) => String(m.id));
    return ids.includes(modelId)
      ? { status: 'ok', detail: `${modelId} listed` }
      : { status: 'fail', detail: `${modelId} not among [${ids.join(', ')}]` };
  });
}

async function callJson(
  transport: Transport,
  port: number,
  method: 'GET' | 'POST',
  path: string,
  signal?: AbortSignal,
  json?: unknown,
): Promise<unknown> {
  signal?.throwIfAborted();
  const response = await httpRequest(transport, {
    port,
    method,
    path,
    headers: { [RAG_CALLER_HEADER]: VERIFY_CALLER },
    ...(json === undefined ? {} : { json }),
    timeoutMs: REQUEST_TIMEOUT_MS,
    signal,
  });
  if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${response.body.slice(0, 200)}`);
  return JSON.parse(response.body) as unknown;
}

type Outcome = Omit<ServiceCheck, 'id' | 'service' | 'ms'>;

async function attempt(id: CheckId, service: string, run: () => Promise<Outcome>): Promise<ServiceCheck> {
  const started = Date.now();
  try {
    return { id, service, ...(await run()), ms: Date.now() - started };
  } catch (error) {
    return check(id, service, 'fail', error instanceof Error ? error.message : String(error), started);
  }
}

function check(
  id: CheckId,
  service: string,
  status: CheckStatus,
  detail: string,
  started: number,
): ServiceCheck {
  return { id, service, status, detail, ms: Date.now() - started };
}
