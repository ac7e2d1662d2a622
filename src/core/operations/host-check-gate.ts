import { CHECK_IDS, type CheckId, type CheckResult, worstStatus } from '../check/check-result.js';
import { ApertusError } from '../errors.js';
import type { GpuInventory } from '../gpu/gpu-inventory.js';
import type { HostProbe } from '../target/probe.js';
import { evaluateHost } from './check.js';
import type { CheckSubject } from './check-subject.js';

export interface HostCheckOutcome {
  results: CheckResult[];
  /** Failed checks the operator chose to skip; the install report records them. */
  skipped: Array<{ id: CheckId; detail: string }>;
  /** The host's GPUs as probed: vLLM services are launched by them (vllm-services.ts). */
  gpu?: GpuInventory;
}

/** Validates --skip-check names before anything connects. */
export function parseSkipChecks(names: readonly string[]): CheckId[] {
  const unknown = names.filter((n) => !(CHECK_IDS as readonly string[]).includes(n));
  if (unknown.length > 0) {
    throw new ApertusError(
      'skip-check-unknown',
      `Unknown check ${unknown.map((n) => `"${n}"`).join(', ')}.`,
      {
        hint: `--skip-check takes one of: ${CHECK_IDS.join(', ')}.`,
      },
    );
  }
  return names as CheckId[];
}

/**
 * The preflight of install is `apertus check` of this host for this bundle, judged from
 * the session's one probe: a failing check refuses the install before a byte is
 * uploaded, unless the operator skips it.
 */
export function gateOnHostCheck(input: {
  probe: HostProbe;
  probedAt: { sentAtMs: number; receivedAtMs: number };
  subject: CheckSubject;
  skip: readonly CheckId[];
  host: string;
}): HostCheckOutcome {
  const evaluation = evaluateHost(input.probe, { subject: input.subject, ...input.probedAt });
  const report = {
    host: input.host,
    transport: input.host,
    status: worstStatus(evaluation.results),
    ...evaluation,
  };
  const failed = report.results.filter((r) => r.status === 'fail');
  const blocking = failed.filter((r) => !input.skip.includes(r.id));
  if (blocking.length > 0) {
    const lines = blocking.map(
      (r) =>
        `  ${r.id}${r.subject ? ` (${r.subject})` : ''}: ${r.detail}${r.hint ? `\n    hint: ${r.hint}` : ''}`,
    );
    throw new ApertusError(
      'host-check-failed',
      `${input.host} failed the preflight check; nothing was changed:\n${lines.join('\n')}`,
      {
        kind: 'operation',
        hint: `Fix the host as the hints say, or skip a check you accept with --skip-check ${[...new Set(blocking.map((r) => r.id))].join(' --skip-check ')} (the report records it).`,
        details: { check: report },
      },
    );
  }
  return {
    results: report.results,
    skipped: failed.map((r) => ({ id: r.id, detail: r.detail })),
    ...(input.probe.gpu ? { gpu: input.probe.gpu } : {}),
  };
}
