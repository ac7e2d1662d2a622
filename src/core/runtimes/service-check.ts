/**
 * One verification result, as data (STYLE.md 5): what install, rollback and status report
 * of a service. The CLI decides how to show it.
 */

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

export interface ServiceCheck {
  id: CheckId;
  service: string;
  status: CheckStatus;
  detail: string;
  ms: number;
  metrics?: Record<string, number>;
}

export type CheckOutcome = Omit<ServiceCheck, 'id' | 'service' | 'ms'>;

/** Runs one check; a throw is a failed check with the error's message as its detail. */
export async function attempt(
  id: CheckId,
  service: string,
  run: () => Promise<CheckOutcome>,
): Promise<ServiceCheck> {
  const started = Date.now();
  try {
    return { id, service, ...(await run()), ms: Date.now() - started };
  } catch (error) {
    return checkResult(id, service, 'fail', error instanceof Error ? error.message : String(error), started);
  }
}

export function checkResult(
  id: CheckId,
  service: string,
  status: CheckStatus,
  detail: string,
  started: number,
): ServiceCheck {
  return { id, service, status, detail, ms: Date.now() - started };
}
