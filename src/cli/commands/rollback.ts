import type { Command } from 'commander';
import type { ROLLBACK_STEPS, RollbackReport } from '../../core/operations/rollback.js';
import { withExamples } from '../help-text.js';
import { runInterruptible } from '../interrupt.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../output/json-output.js';
import { chooseRendererMode } from '../output/renderer-mode.js';
import { type HostTargetFlags, hostTarget, withHostTargetOptions } from './host-target.js';

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

interface RollbackFlags extends HostTargetFlags {
  to?: string;
  json?: boolean;
}

export function registerRollback(program: Command, io: CliIO): void {
  const command = withHostTargetOptions(
    program
      .command('rollback')
      .description(
        'Switch a host back to its previous release (or --to VERSION) and prove it answers; put back the current one if it does not',
      ),
    { local: 'this machine' },
  )
    .option('--to <version>', 'a release of the same bundle on the host (`apertus status` lists them)')
    .option('--json', 'print only the JSON report on stdout')
    .action(async (flags: RollbackFlags) => {
      const target = hostTarget(flags);
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
