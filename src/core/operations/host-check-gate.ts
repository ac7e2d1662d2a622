import { CHECK_IDS, type CheckId, type CheckResult } from '../check/check-result.js';
import { ApertusError } from '../errors.js';
import type { GpuInventory } from '../gpu/gpu-inventory.js';
import type { Transport } from '../host/transport.js';
import { checkHost } from './check.js';

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
 * The preflight of install is `apertus check` of this host for this bundle: a failing
 * check refuses the install before a byte is uploaded, unless the operator skips it.
 */
export async function gateOnHostCheck(
  transport: Transport,
  options: { bundlePath: string; root: string; skip: readonly CheckId[]; signal?: AbortSignal | undefined },
): Promise<HostCheckOutcome> {
  const report = await checkHost(transport, {
    bundle: options.bundlePath,
    root: options.root,
    signal: options.signal,
  });
  const failed = report.results.filter((r) => r.status === 'fail');
  const blocking = failed.filter((r) => !options.skip.includes(r.id));
  if (blocking.length > 0) {
    const lines = blocking.map(
      (r) =>
        `  ${r.id}${r.subject ? ` (${r.subject})` : ''}: ${r.detail}${r.hint ? `\n    hint: ${r.hint}` : ''}`,
    );
    throw new ApertusError(
      'host-check-failed',
      `${transport.description} failed the preflight check; nothing was changed:\n${lines.join('\n')}`,
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
    ...(report.facts?.gpu ? { gpu: report.facts.gpu } : {}),
  };
}
