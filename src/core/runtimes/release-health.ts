import type { Transport } from '../host/transport.js';
import { startOrder } from './lifecycle.js';
import { adapterListedCheck, modelListedCheck } from './openai-checks.js';
import { adapterOf, type ServiceSpec } from './registry.js';
import type { ServiceCheck } from './service-check.js';
import { waitForHealth } from './verify-services.js';

/** The model id a service lists on /v1/models; null for a service without the OpenAI API. */
export function serviceModelId(service: ServiceSpec): string | null {
  return adapterOf(service).modelId(service);
}

/** The ids its LoRA adapters are listed under, next to its model id; empty for most kinds. */
export function serviceAdapterIds(service: ServiceSpec): readonly string[] {
  return adapterOf(service).adapterIds?.(service) ?? [];
}

/**
 * The checks that say a release that verified once is serving again: each service answers
 * its health path, and each model service lists its model and each of its adapters. A
 * rollback restarts services that passed the full install verification; it proves they came
 * back, not the model anew.
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
    if (health.status !== 'ok' || modelId === null) continue;
    checks.push(await modelListedCheck(transport, service.name, service.port, modelId, signal));
    for (const id of serviceAdapterIds(service))
      checks.push(await adapterListedCheck(transport, service.name, service.port, id, signal));
  }
  return checks;
}
