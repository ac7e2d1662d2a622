/**
 * One verification result, as data (STYLE.md 5): what install, rollback and status report
 * of a service. The CLI decides how to show it.
 */
import { ApertusError } from '../errors.js';

export type CheckStatus = 'ok' | 'fail';

export type CheckId =
  | 'verify.health'
  | 'verify.models'
  | 'verify.chat'
  | 'verify.embeddings'
  | 'verify.rag-canary'
  | 'verify.golden'
  | 'verify.eval'
  | 'verify.audit'
  | 'verify.offline';

export interface ServiceCheck {
  id: CheckId;
  service: string;
  status: CheckStatus;
  detail: string;
  ms: number;
  metrics?: Record<string, number>;
  /** The model id asked, on checks of a LoRA adapter a model server serves beside its model. */
  model?: string;
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

/** One line for a step's checks: the failure, or what each service showed. */
export function summariseChecks(checks: readonly ServiceCheck[], failed: ServiceCheck | undefined): string {
  if (failed) return `${failed.service}: ${failed.detail}`;
  return checks.length === 1
    ? (checks[0]?.detail ?? '')
    : checks.map((c) => `${c.service}: ${c.detail}`).join('; ');
}

/**
 * Settles each verification step from its checks: failed, ok, or skipped with the reason
 * `unrun` gives for a step that has none.
 */
export function settleCheckSteps<Id extends CheckId>(
  ids: readonly Id[],
  checks: readonly ServiceCheck[],
  emit: (id: Id, status: 'ok' | 'fail' | 'skip', detail: string) => void,
  unrun: (id: Id) => string,
): void {
  for (const id of ids) {
    const mine = checks.filter((c) => c.id === id);
    const failed = mine.find((c) => c.status === 'fail');
    if (mine.length === 0) emit(id, 'skip', unrun(id));
    else emit(id, failed ? 'fail' : 'ok', summariseChecks(mine, failed));
  }
}

/** An integer argument of a service's command, checked again where it is rendered (the schema checked it at load). */
export function serviceInteger(
  service: { name: string },
  field: string,
  value: number,
  min: number,
  max: number,
): string {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ApertusError(
      'service-invalid',
      `service ${service.name}: ${field} must be an integer from ${min} to ${max}, got ${value}`,
      { hint: `Fix services[].${field} of "${service.name}" in the recipe.` },
    );
  }
  return String(value);
}
