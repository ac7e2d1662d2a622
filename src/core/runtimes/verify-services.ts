/**
 * Verification of a release's services on a host, whatever their kinds: health first, then
 * each kind's own checks (its adapter's `verify`), the recipe's golden prompts, and what the
 * services recorded meanwhile (the RAG audit log).
 */
import { httpRequest } from '../host/http-over-transport.js';
import type { Transport } from '../host/transport.js';
import type { GoldenPrompt, VerifySpec } from '../layout/types.js';
import type { HostLayout } from '../target/layout.js';
import { streamedChat } from './openai-checks.js';
import { adapterOf, type ServiceSpec } from './registry.js';
import { attempt, checkResult, type ServiceCheck } from './service-check.js';

export { verifyAuditLog } from './rag/audit-check.js';
export type { CheckId, CheckStatus, ServiceCheck } from './service-check.js';

/**
 * Polls the service's health path until it answers 200, or (a service without HTTP) its
 * port until it accepts a connection, or the deadline passes.
 */
export async function waitForHealth(
  transport: Transport,
  service: ServiceSpec,
  deadlineMs: number,
  signal?: AbortSignal,
): Promise<ServiceCheck> {
  const started = Date.now();
  const path = adapterOf(service).healthPath(service);
  let last = 'no answer yet';
  while (Date.now() - started < deadlineMs) {
    signal?.throwIfAborted();
    try {
      if (path === null) {
        const socket = await transport.connect(service.port);
        socket.destroy();
        return checkResult(
          'verify.health',
          service.name,
          'ok',
          `accepted a connection on port ${service.port}`,
          started,
        );
      }
      const response = await httpRequest(transport, {
        port: service.port,
        method: 'GET',
        path,
        timeoutMs: 5_000,
      });
      if (response.status === 200) {
        return checkResult('verify.health', service.name, 'ok', `answered on port ${service.port}`, started);
      }
      last = `HTTP ${response.status}${response.body ? `: ${response.body.slice(0, 160)}` : ''}`;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return checkResult(
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
  layout?: HostLayout,
): Promise<ServiceCheck[]> {
  return adapterOf(service).verify(transport, service, spec, signal, layout);
}

/** What the services recorded during verification checks out (the RAG audit log's chain). */
export async function verifyServiceRecords(
  transport: Transport,
  root: string,
  services: readonly ServiceSpec[],
  signal?: AbortSignal,
): Promise<ServiceCheck[]> {
  const checks: ServiceCheck[] = [];
  for (const service of services) {
    checks.push(...((await adapterOf(service).verifyRecords?.(transport, root, service, signal)) ?? []));
  }
  return checks;
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
          model: adapterOf(service).modelId(service) ?? '',
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
