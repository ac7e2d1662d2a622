/** One verdict of `apertus check`; the CLI prints it, `install` refuses on 'fail'. JSON field names are a contract. */
export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  /** Stable id, what `install --skip-check NAME` names (see CHECK_IDS). */
  id: CheckId;
  status: CheckStatus;
  /** What was found, in one line. */
  detail: string;
  /** What to do about it; set on every warn and fail, and on an ok that needs a setting. */
  hint?: string;
  /** What the check was about when an id repeats: a filesystem, a service, a model. */
  subject?: string;
}

/** Every check, in report order. */
export const CHECK_IDS = [
  'connect',
  'os',
  'arch',
  'libc',
  'clock',
  'install-root',
  'disk',
  'ports',
  'memory',
  'gpu',
  'driver',
  'cuda',
  'compute-capability',
  'mig',
  'gpu-memory-free',
  'fit',
  'requirements',
  'offline-readiness',
  'container-runtime',
  'container-toolkit',
] as const;
export type CheckId = (typeof CHECK_IDS)[number];

const RANK: Record<CheckStatus, number> = { ok: 0, warn: 1, fail: 2 };

export function worstStatus(results: readonly { status: CheckStatus }[]): CheckStatus {
  return results.reduce<CheckStatus>((worst, r) => (RANK[r.status] > RANK[worst] ? r.status : worst), 'ok');
}

export function byReportOrder(a: CheckResult, b: CheckResult): number {
  return CHECK_IDS.indexOf(a.id) - CHECK_IDS.indexOf(b.id);
}
