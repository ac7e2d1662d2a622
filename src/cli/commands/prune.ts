import type { Command } from 'commander';
import { ApertusError } from '../../core/errors.js';
import type { PRUNE_STEPS, PruneReport } from '../../core/operations/prune.js';
import type { ValueParser } from '../flag-values.js';
import { withExamples } from '../help-text.js';
import { runInterruptible } from '../interrupt.js';
import type { CliIO } from '../io.js';
import { formatBytes } from '../output/format.js';
import { writeJson } from '../output/json-output.js';
import { chooseRendererMode } from '../output/renderer-mode.js';
import { runOnFleet } from './fleet-command.js';
import { hostTarget, withHostTargetOptions } from './host-target.js';
import { type InventoryFlags, inventoryTargetsOf, withInventoryOptions } from './inventory-flags.js';

const TITLES: Record<(typeof PRUNE_STEPS)[number], string> = {
  connect: 'Connect',
  plan: 'Choose what to keep',
  remove: 'Remove releases, blobs and image archives',
  report: 'Record',
};

const RESUME_HINT = 'Run `apertus prune --dry-run` to see what is left to remove, then prune again.';

interface PruneFlags extends InventoryFlags {
  keep?: number;
  dryRun?: boolean;
  json?: boolean;
}

/** `--keep`: 0 or more; the current and previous releases are kept whatever it says. */
const keepCount: ValueParser<number> = (value) => {
  const n = Number(value);
  if (value.trim() === '' || !Number.isSafeInteger(n) || n < 0) {
    throw new ApertusError('usage', `--keep ${value} is not a whole number of releases (0 or more).`, {
      hint: 'e.g. --keep 2: the two most recent releases stay, and the current and previous ones always do.',
    });
  }
  return n;
};

export function registerPrune(program: Command, io: CliIO): void {
  const command = withInventoryOptions(
    withHostTargetOptions(
      program
        .command('prune')
        .description(
          'Remove releases beyond the N most recent (never the current or previous one), then the blobs no kept release references',
        ),
      { local: 'this machine', root: 'per-host' },
    ),
    'prune',
  )
    .option('--keep <n>', 'how many of the most recent releases to keep (default 2)', keepCount)
    .option('--dry-run', 'print what would be removed; change nothing')
    .option('--json', 'print only the JSON report on stdout')
    .action(async (flags: PruneFlags) => {
      const { pruneHost } = await import('../../core/operations/prune.js');
      const fleet = await inventoryTargetsOf(flags, io);
      if (fleet) {
        await runOnFleet(
          io,
          fleet,
          { json: flags.json, hint: RESUME_HINT, format: formatPruneReport },
          (host, signal, onProgress) =>
            pruneHost({
              target: host.target,
              root: host.root,
              keep: flags.keep,
              dryRun: flags.dryRun,
              signal,
              onProgress,
            }),
        );
        return;
      }
      const target = await hostTarget(flags, io);
      const [{ PRUNE_STEPS }, { runSteps, stepDefinitions }] = await Promise.all([
        import('../../core/operations/prune.js'),
        import('../output/run-steps.js'),
      ]);
      const report = await runInterruptible(io, RESUME_HINT, (signal) =>
        runSteps(io, chooseRendererMode(io, flags), stepDefinitions(PRUNE_STEPS, TITLES), (onProgress) =>
          pruneHost({ target, root: flags.root, keep: flags.keep, dryRun: flags.dryRun, signal, onProgress }),
        ),
      );
      if (flags.json) writeJson(io, report);
      else io.stdout.write(formatPruneReport(report));
    });
  withExamples(command, [
    { run: 'prune --host root@10.0.0.5 --dry-run', does: 'list what would go' },
    {
      run: 'prune --host root@10.0.0.5 --keep 1',
      does: 'keep the newest release besides current and previous',
    },
    { run: 'prune --inventory hosts.yaml --keep 3', does: 'every host of the inventory, 5 at a time' },
  ]);
}

export function formatPruneReport(report: PruneReport): string {
  const { plan } = report;
  const verb = report.dryRun ? 'would remove' : 'removed';
  const lines = [
    `${report.dryRun ? 'Prune plan' : 'Pruned'} on ${report.host.transport} (keep ${plan.keep} most recent, and current and previous)`,
    ...plan.releases.map((r) =>
      r.action === 'keep'
        ? `  keep      ${r.release} (${r.why.join(', ')})`
        : `  ${(report.dryRun ? 'remove' : 'removed').padEnd(10)}${r.release} (${r.why})`,
    ),
    plan.blobs.keptAll
      ? `  blobs     none removed: ${plan.blobs.keptAll}`
      : `  blobs     ${verb} ${plan.blobs.remove.length} (${formatBytes(plan.blobs.removeBytes)}); ${plan.blobs.kept} kept`,
    `  images    ${verb} ${plan.images.remove.length} archives; ${plan.images.kept} kept`,
    ...(report.path ? [`  report    ${report.path}`] : []),
  ];
  return `${lines.join('\n')}\n`;
}
