import type { Command } from 'commander';
import type { EvalRun, EvalSetResult } from '../../core/eval/run-eval.js';
import type { EvalReport } from '../../core/operations/eval.js';
import { withExamples } from '../help-text.js';
import { runInterruptible } from '../interrupt.js';
import type { CliIO } from '../io.js';
import { formatFleetOutcomes } from '../output/fleet-lines.js';
import { formatTable } from '../output/format.js';
import { writeJson } from '../output/json-output.js';
import { ReportedFailure } from '../reported-failure.js';
import { hostTarget, withHostTargetOptions } from './host-target.js';
import { type InventoryFlags, inventoryTargetsOf, withInventoryOptions } from './inventory-flags.js';

interface EvalFlags extends InventoryFlags {
  set?: string;
  compare?: boolean;
  json?: boolean;
}

export function registerEval(program: Command, io: CliIO): void {
  const command = withInventoryOptions(
    withHostTargetOptions(
      program
        .command('eval')
        .description(
          "Run the current release's evaluation sets against its services: answer accuracy, retrieval hit@k and MRR, latency p50/p95, tokens/s, judged against the recipe's thresholds; recorded in the host's audit log with a report",
        ),
      { local: 'this machine', root: 'per-host' },
    ),
    'evaluate',
  )
    .option('--set <name>', 'only this evaluation set')
    .option(
      '--compare',
      "beside it, the previous release's run as the host stored it (at its install or last eval; labelled stored, never re-measured)",
    )
    .option('--json', 'print only the JSON report on stdout')
    .action(async (flags: EvalFlags) => {
      const { evaluateHost } = await import('../../core/operations/eval.js');
      const run = (
        target: Parameters<typeof evaluateHost>[0]['target'],
        root: string | undefined,
        signal: AbortSignal,
        progress: boolean,
      ) =>
        evaluateHost({
          target,
          root,
          set: flags.set,
          compare: flags.compare,
          signal,
          onProgress: progress
            ? (event) => {
                if (event.step === 'eval.case') io.stderr.write(`${event.detail}\n`);
              }
            : undefined,
        });
      const fleet = await inventoryTargetsOf(flags, io);
      if (fleet) {
        const { onEveryHost } = await import('../../core/operations/fleet-hosts.js');
        const report = await runInterruptible(
          io,
          "Each host's evaluation documents are removed as its run ends; run the command again.",
          (signal) => onEveryHost(fleet, 5, (host) => run(host.target, host.root, signal, false), signal),
        );
        if (flags.json) writeJson(io, report);
        else io.stdout.write(formatFleetOutcomes(report, formatEvalReport));
        if (!report.ok) throw new ReportedFailure();
        return;
      }
      const target = await hostTarget(flags, io);
      const report = await runInterruptible(
        io,
        'The evaluation documents are removed as the run ends; run the command again.',
        (signal) => run(target, flags.root, signal, !flags.json),
      );
      if (flags.json) writeJson(io, report);
      else io.stdout.write(formatEvalReport(report));
      if (!report.ok) throw new ReportedFailure();
    });
  withExamples(command, [
    {
      run: 'eval --host root@10.0.0.5',
      does: "every set of the current release, against the recipe's thresholds",
    },
    {
      run: 'eval --host root@10.0.0.5 --set hospital --compare',
      does: 'one set, beside the previous release',
    },
    { run: 'eval --inventory hosts.yaml --json', does: 'every host, as JSON' },
  ]);
}

const show = (value: number | null, unit = '') => (value === null ? '-' : `${value}${unit}`);

function metricRows(run: EvalRun | null, set: string): Map<string, string> {
  const found: EvalSetResult | undefined = run?.sets.find((s) => s.name === set);
  const m = found?.metrics;
  const rows = new Map<string, string>();
  rows.set('questions', m ? String(m.cases) : '-');
  rows.set('accuracy', show(m?.accuracy ?? null));
  rows.set(`hit@${run?.k ?? '-'}`, show(m?.hitAtK ?? null));
  rows.set('MRR', show(m?.mrr ?? null));
  rows.set('latency p50', show(m?.latencyP50Ms ?? null, ' ms'));
  rows.set('latency p95', show(m?.latencyP95Ms ?? null, ' ms'));
  rows.set('tokens/s', show(m?.tokensPerSecond ?? null));
  rows.set(
    'verdict',
    found
      ? found.ok
        ? 'pass'
        : `FAIL: ${found.misses.map((x) => x.metric).join(', ') || found.error}`
      : '-',
  );
  return rows;
}

export function formatEvalReport(report: EvalReport): string {
  const { current, previous } = report;
  const lines = [
    `Evaluation of ${current.name} ${current.version} on ${report.host}: ${current.ok ? 'every set within its thresholds' : 'BELOW THRESHOLD'}`,
  ];
  const columns = [`${current.name} ${current.version} (current, measured now)`];
  if (previous) {
    const prev = previous.run;
    columns.push(
      prev
        ? `${prev.name} ${prev.version} (previous, stored ${prev.measuredAt})`
        : `${previous.release} (previous)`,
    );
  }
  for (const set of current.sets) {
    const now = metricRows(current, set.name);
    const before = previous ? metricRows(previous.run, set.name) : null;
    lines.push(
      '',
      `set ${set.name} (service ${set.service}, ${set.sha256.slice(0, 12)})`,
      formatTable(
        ['METRIC', ...columns],
        [...now.entries()].map(([metric, value]) => [
          metric,
          value,
          ...(before ? [[...before.values()][[...now.keys()].indexOf(metric)] ?? '-'] : []),
        ]),
      ),
    );
    for (const miss of set.misses)
      lines.push(
        `  ${miss.metric} ${miss.value ?? 'not measured'} is ${miss.bound === 'min' ? 'below' : 'above'} the threshold ${miss.threshold}`,
      );
    if (set.error) lines.push(`  ${set.error}`);
  }
  if (previous) lines.push('', `previous: ${previous.note}${previous.report ? ` (${previous.report})` : ''}`);
  lines.push('', `report ${report.path}; audit record ${report.record.seq}`);
  return `${lines.join('\n')}\n`;
}
