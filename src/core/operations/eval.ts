/**
 * `apertus eval`: runs the evaluation sets the current release carries (its release.json
 * holds them, from the bundle) against its services, in a host session with the lock held
 * (a set's own documents enter the RAG collection for the run), and records the run: an
 * EVAL audit record and its report. ok is false when a set misses a threshold.
 *
 * `--compare` sets the previous release beside it. Its services are not started again for
 * that: two releases' services share ports and the RAG collection, so running both at once
 * would measure neither honestly. The previous release's side is the newest run stored on
 * the host for it (its install's evaluation, or an `apertus eval` while it was current),
 * labelled as stored, with when it was measured and the report it came from.
 */
import { ApertusError } from '../errors.js';
import type { EvalSpec } from '../eval/eval-set.js';
import type { EvalCaseResult } from '../eval/metrics.js';
import { type EvalRun, runEval } from '../eval/run-eval.js';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import { noProgress, type RunOptions } from '../progress.js';
import type { InstallTarget } from '../target/connect.js';
import { DEFAULT_HOST_ROOT, type HostLayout, parseHostRoot } from '../target/layout.js';
import { readRelease } from '../target/releases.js';
import { withHostSession } from '../target/session.js';

export interface EvalOptions extends RunOptions {
  target: InstallTarget;
  root?: string | undefined;
  /** Only this set. */
  set?: string | undefined;
  /** Set the previous release's stored run beside this one. */
  compare?: boolean | undefined;
}

/** The previous release's side of `--compare`. */
export interface StoredEval {
  release: string;
  /** Always true: this run was not measured now, but read from the report named. */
  stored: true;
  /** The report the run was read from; null when none holds one. */
  report: string | null;
  /** The run as stored; null when the host keeps none for that release. */
  run: EvalRun | null;
  note: string;
}

/** What `apertus eval --json` prints and the report holds. Field names are a contract. */
export interface EvalReport {
  ok: boolean;
  path: string;
  record: { seq: number };
  host: string;
  current: EvalRun;
  /** With --compare: the previous release; null without it, or when the host has no previous release. */
  previous: StoredEval | null;
}

const MAX_REPORTS_READ = 20;

export async function evaluateHost(options: EvalOptions): Promise<EvalReport> {
  const onProgress = options.onProgress ?? noProgress;
  const root = parseHostRoot(options.root ?? DEFAULT_HOST_ROOT);
  return withHostSession(
    {
      target: options.target,
      root,
      command: `eval${options.set ? ` --set ${options.set}` : ''}`,
      lock: 'existing',
      probe: { system: false, sizes: false },
      signal: options.signal,
      onProgress,
    },
    async (session) => {
      const { transport, layout, probe } = session;
      const host = transport.description;
      const link = probe.root.current;
      const release = link ? await readRelease(transport, layout, link) : null;
      if (!link || !release) {
        throw new ApertusError('nothing-installed', `Nothing is installed under ${root} on ${host}.`, {
          kind: 'operation',
          hint: 'Install a bundle whose recipe has verify.eval first (apertus install).',
        });
      }
      const spec = release.record.eval;
      const what = `${release.record.name} ${release.record.version}`;
      if (!spec) {
        throw new ApertusError(
          'eval-no-sets',
          `The current release ${what} on ${host} carries no evaluation sets.`,
          {
            hint: 'Add verify.eval (sets of questions in JSONL) to the recipe, bundle and install it again.',
          },
        );
      }
      checkSetName(spec, options.set, what);
      onProgress({ step: 'eval', status: 'start', detail: `${what}: ${spec.sets.length} sets` });
      const current = await runEval({
        transport,
        services: release.services,
        spec,
        release: { linkTarget: link, name: release.record.name, version: release.record.version },
        set: options.set,
        signal: session.signal,
        onCase: (set: string, result: EvalCaseResult) =>
          onProgress({
            step: 'eval.case',
            status: result.error ? 'fail' : 'ok',
            detail: `${set}/${result.id}: ${result.error ?? `${result.latencyMs} ms${result.retrieval ? `, rank ${result.rank ?? 'miss'}` : ''}`}`,
          }),
      });
      onProgress({ step: 'eval', status: current.ok ? 'ok' : 'fail' });
      const previousLink = session.state.previous;
      const previous =
        options.compare && previousLink
          ? await storedEval(transport, layout, previousLink, options.set)
          : null;
      const recorded = await session.record({
        kind: 'eval',
        method: 'EVAL',
        endpoint: `${release.record.name}@${release.record.version}`,
        ok: current.ok,
        subjectSha256: release.record.manifestDigest.replace(/^sha256:/, ''),
        current: link,
        state: () => session.state,
        report: ({ path, seq }): EvalReport => ({
          ok: current.ok,
          path,
          record: { seq },
          host,
          current,
          previous,
        }),
      });
      if (recorded.reportError !== null) {
        throw new ApertusError(
          'eval-report-unwritten',
          `The evaluation ran and audit record ${recorded.record.seq} holds it, but its report could not be written on ${host}: ${recorded.reportError}`,
          {
            kind: 'operation',
            hint: `Fix what stops writes to ${layout.reports}.`,
            details: { report: recorded.report },
          },
        );
      }
      return recorded.report;
    },
  );
}

function checkSetName(spec: EvalSpec, set: string | undefined, what: string): void {
  if (set === undefined || spec.sets.some((s) => s.name === set)) return;
  throw new ApertusError('eval-set-unknown', `${what} has no evaluation set "${set}".`, {
    hint: `Its sets: ${spec.sets.map((s) => s.name).join(', ')}.`,
  });
}

/**
 * The newest run stored on the host for a release: reports are named by their audit
 * record, so the newest is last in name order; an install report holds its run under
 * `eval`, an eval report under `current` (its `previous` is itself a stored copy, skipped).
 */
export async function storedEval(
  transport: Transport,
  layout: HostLayout,
  release: string,
  set?: string,
): Promise<StoredEval> {
  const marker = `"evaluatedRelease": ${JSON.stringify(release)}`;
  const listed = await transport.exec(
    `cd ${shellQuote([layout.reports])} 2>/dev/null && grep -l -F -e ${shellQuote([marker])} -- *-install-*.json *-eval-*.json 2>/dev/null | sort -r | head -n ${MAX_REPORTS_READ}; true`,
    { reject: false },
  );
  const names = listed.stdout.split('\n').filter((n) => /^\d{6,}-(install|eval)-\d{8}T\d{6}Z\.json$/.test(n));
  for (const name of names) {
    const file = `${layout.reports}/${name}`;
    const text = await transport.exec(shellQuote(['cat', file]), { reject: false });
    let report: { eval?: EvalRun | null; current?: EvalRun } | null = null;
    try {
      report = JSON.parse(text.stdout);
    } catch {
      continue;
    }
    const run = [report?.eval, report?.current].find((r) => r?.evaluatedRelease === release);
    if (!run) continue;
    const sets = set === undefined ? run.sets : run.sets.filter((s) => s.name === set);
    return {
      release,
      stored: true,
      report: file,
      run: { ...run, sets },
      note: `stored: measured at ${run.measuredAt} while ${release} was current, not now`,
    };
  }
  return {
    release,
    stored: true,
    report: null,
    run: null,
    note: `the host keeps no evaluation of ${release} (installed before it had evaluation sets, or its reports were removed)`,
  };
}
