import { httpRequest } from '../host/http-over-transport.js';
import type { Transport } from '../host/transport.js';
import type { ServiceSpec } from '../layout/types.js';
import { startOrder } from './service-command.js';
import { type ServiceCheck, waitForHealth } from './verify-services.js';

/** The model id a service lists on /v1/models; null for a service without the OpenAI API. */
export function serviceModelId(service: ServiceSpec): string | null {
  if (service.runtime === 'rag') return service.chatModel;
  if (service.runtime === 'container') return service.openai?.modelId ?? null;
  return service.model.id;
}

/**
 * The checks that say a release that verified once is serving again: each service answers
 * /health, and each model service lists its model. A rollback restarts services that
 * passed the full install verification; it proves they came back, not the model anew.
 */
export async function checkReleaseServices(
  transport: Transport,
  services: ServiceSpec[],
  healthTimeoutMs: number,
  signal?: AbortSignal,
): Promise<ServiceCheck[]> {
  const checks: ServiceCheck[] = [];
  for (const service of startOrder(services)) {
    const health = await waitForHealth(transport, service, healthTimeoutMs, signal);
    checks.push(health);
    const modelId = serviceModelId(service);
    if (health.status === 'ok' && modelId !== null)
      checks.push(await modelListed(transport, service, modelId, signal));
  }
  return checks;
}

async function modelListed(
  transport: Transport,
  service: ServiceSpec,
  modelId: string,
  signal?: AbortSignal,
): Promise<ServiceCheck> {
  const started = Date.now();
  const result = (status: ServiceCheck['status'], detail: string): ServiceCheck => ({
    id: 'verify.models',
    service: service.name,
    status,
    detail,
    ms: Date.now() - started,
  });
  try {
    const response = await httpRequest(transport, {
      port: service.port,
      path: '/v1/models',
      timeoutMs: 30_000,
      signal,
    });
    if (response.status !== 200) return result('fail', `/v1/models answered HTTP ${response.status}`);
    const body = JSON.parse(response.body) as { data?: Array<{ id?: unknown }> };
    const ids = (body.data ?? []).map((m) => String(m.id));
    return ids.includes(modelId)
      ? result('ok', `${modelId} listed`)
      : result('fail', `${modelId} not among [${ids.join(', ')}]`);
  } catch (error) {
    return result('fail', error instanceof Error ? error.message : String(error));
  }
}
