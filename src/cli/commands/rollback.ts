import type { Command } from 'commander';
import type { ROLLBACK_STEPS, RollbackReport } from '../../core/operations/rollback.js';
import { withExamples } from '../help-text.js';
import { runInterruptible } from '../interrupt.js';
import type { CliIO } from '../io.js';
import { formatFleetOutcomes } from '../output/fleet-lines.js';
import { writeJson } from '../output/json-output.js';
import { chooseRendererMode } from '../output/renderer-mode.js';
import { ReportedFailure } from '../reported-failure.js';
import { hostTarget, withHostTargetOptions } from './host-target.js';
import { type InventoryFlags, inventoryTargetsOf, withInventoryOptions } from './inventory-flags.js';

const TITLES: Record<(typeof ROLLBACK_STEPS)[number], string> = {
  connect: 'Connect',
  lock: 'Lock host, choose release',
  stop: 'Stop current services',
  activate: 'Activate',
  'verify.health': 'Health',
  'verify.models': 'Model listed',
  restore: 'Restore the release that was current',
  report: 'Report',
};

interface RollbackFlags extends InventoryFlags {
  to?: string;
  json?: boolean;
}

export function registerRollback(program: Command, io: CliIO): void {
  const command = withInventoryOptions(
    withHostTargetOptions(
      program
        .command('rollback')
        .description(
          'Switch a host back to its previous release (or --to VERSION) and prove it answers; put back the current one if it does not',
        ),
      { local: 'this machine', root: 'per-host' },
    ),
    'roll back',
  )
    .option('--to <version>', 'a release of the same bundle on the host (`apertus status` lists them)')
    .option('--json', 'print only the JSON report on stdout')
    .action(async (flags: RollbackFlags) => {
      const fleet = await inventoryTargetsOf(flags, io);
      if (fleet) {
        const [{ rollbackRelease }, { onEveryHost }, { fleetProgressLines }] = await Promise.all([
          import('../../core/operations/rollback.js'),
          import('../../core/operations/fleet-hosts.js'),
          import('../output/fleet-lines.js'),
        ]);
        const lines = flags.json ? undefined : fleetProgressLines(io);
        const report = await runInterruptible(
          io,
          'Run `apertus status --inventory` to see what each host runs, then the rollback again.',
          (signal) =>
            onEveryHost(
              fleet,
              5,
              (host) =>
                rollbackRelease({
                  target: host.target,
                  root: host.root,
                  to: flags.to,
                  signal,
                  onProgress: lines && ((event) => lines.host(host.name, event)),
                }),
              signal,
            ),
        );
        if (flags.json) writeJson(io, report);
        else io.stdout.write(formatFleetOutcomes(report, formatRollbackReport));
        if (!report.ok) throw new ReportedFailure();
        return;
      }
      const target = await hostTarget(flags, io);
      const [{ ROLLBACK_STEPS, rollbackRelease }, { runSteps, stepDefinitions }] = await Promise.all([
        import('../../core/operations/rollback.js'),
        import('../output/run-steps.js'),
      ]);
      const steps = stepDefinitions(ROLLBACK_STEPS, TITLES);
      const resumeHint = 'Run `apertus status` to see what the host runs, then the rollback again.';
      const report = await runInterruptible(io, resumeHint, (signal) =>
        runSteps(io, chooseRendererMode(io, flags), steps, (onProgress) =>
          rollbackRelease({ target, root: flags.root, to: flags.to, signal, onProgress }),
        ),
      );
      if (flags.json) writeJson(io, report);
      else io.stdout.write(formatRollbackReport(report));
    });
  withExamples(command, [
    { run: 'rollback --host root@10.0.0.5', does: 'back to the previous release' },
    { run: 'rollback --host root@10.0.0.5 --to 1.0.0', does: 'to a release `apertus status` lists' },
    { run: 'rollback --inventory hosts.yaml --limit gpu-0*', does: 'every matching host, 5 at a time' },
  ]);
}

export function formatRollbackReport(report: RollbackReport): string {
  const lines = [
    `Rolled back to ${report.to.name} ${report.to.version} on ${report.host.transport}${report.from ? ` (from ${report.from.version})` : ''}`,
    ...report.checks.map(
      (c) => `  ${c.status === 'ok' ? 'ok  ' : 'FAIL'}      ${c.id} ${c.service}: ${c.detail}`,
    ),
    `  report    ${report.path}`,
  ];
  return `${lines.join('\n')}\n`;
}
