import { httpRequest } from '../host/http-over-transport.js';
import type { Transport } from '../host/transport.js';
import type { ServiceSpec, VerifySpec } from '../layout/types.js';

export type CheckStatus = 'ok' | 'fail';

/** One verification result, as data: the CLI decides how to show it. */
export interface ServiceCheck {
  id: 'verify.health' | 'verify.models' | 'verify.chat' | 'verify.embeddings';
  service: string;
  status: CheckStatus;
  detail: string;
  ms: number;
  metrics?: Record<string, number>;
}

const REQUEST_TIMEOUT_MS = 120_000;

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
        path: '/health',
        timeoutMs: 5_000,
      });
      if (response.status === 200) {
        return check('verify.health', service, 'ok', `answered on port ${service.port}`, started);
      }
      last = `HTTP ${response.status}`;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return check(
    'verify.health',
    service,
    'fail',
    `no healthy answer in ${deadlineMs / 1000} s (${last})`,
    started,
  );
}

/** The model listed, a chat completion that returns tokens, embeddings of the declared size. */
export async function verifyService(
  transport: Transport,
  service: ServiceSpec,
  spec: VerifySpec,
  signal?: AbortSignal,
): Promise<ServiceCheck[]> {
  const checks: ServiceCheck[] = [];
  const call = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
    signal?.throwIfAborted();
    const response = await httpRequest(transport, {
      port: service.port,
      method,
      path,
      body: body === undefined ? undefined : JSON.stringify(body),
      timeoutMs: REQUEST_TIMEOUT_MS,
    });
    if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${response.body.slice(0, 200)}`);
    return JSON.parse(response.body) as unknown;
  };
  const attempt = async (
    id: ServiceCheck['id'],
    run: () => Promise<Omit<ServiceCheck, 'id' | 'service' | 'ms'>>,
  ) => {
    const started = Date.now();
    try {
      const outcome = await run();
      checks.push({ id, service: service.name, ms: Date.now() - started, ...outcome });
    } catch (error) {
      checks.push(
        check(id, service, 'fail', error instanceof Error ? error.message : String(error), started),
      );
    }
  };

  await attempt('verify.models', async () => {
    const body = (await call('GET', '/v1/models')) as { data?: Array<{ id?: unknown }> };
    const ids = (body.data ?? []).map((m) => String(m.id));
    return ids.includes(service.model.id)
      ? { status: 'ok', detail: `${service.model.id} listed` }
      : { status: 'fail', detail: `${service.model.id} not among [${ids.join(', ')}]` };
  });

  await attempt('verify.chat', async () => {
    const started = Date.now();
    const body = (await call('POST', '/v1/chat/completions', {
      model: service.model.id,
      messages: [{ role: 'user', content: spec.chat.prompt }],
      max_tokens: spec.chat.maxTokens,
      temperature: 0,
    })) as { usage?: { completion_tokens?: unknown }; choices?: unknown[] };
    const tokens = Number(body.usage?.completion_tokens ?? 0);
    const seconds = (Date.now() - started) / 1000;
    if (!Array.isArray(body.choices) || body.choices.length === 0 || !(tokens > 0)) {
      return {
        status: 'fail',
        detail: `no tokens returned (completion_tokens=${String(body.usage?.completion_tokens)})`,
      };
    }
    return {
      status: 'ok',
      detail: `${tokens} tokens in ${seconds.toFixed(2)} s`,
      metrics: { completionTokens: tokens, tokensPerSecond: Number((tokens / seconds).toFixed(1)) },
    };
  });

  const embeddings = spec.embeddings;
  if (embeddings && service.embeddings) {
    await attempt('verify.embeddings', async () => {
      const body = (await call('POST', '/v1/embeddings', {
        model: service.model.id,
        input: embeddings.input,
      })) as {
        data?: Array<{ embedding?: unknown }>;
      };
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
    });
  }
  return checks;
}

function check(
  id: ServiceCheck['id'],
  service: ServiceSpec,
  status: CheckStatus,
  detail: string,
  started: number,
): ServiceCheck {
  return { id, service: service.name, status, detail, ms: Date.now() - started };
}
