import type { Command } from 'commander';
import type { UNINSTALL_STEPS, UninstallReport } from '../../core/operations/uninstall.js';
import { withExamples } from '../help-text.js';
import { runInterruptible } from '../interrupt.js';
import type { CliIO } from '../io.js';
import { formatBytes } from '../output/format.js';
import { writeJson } from '../output/json-output.js';
import { chooseRendererMode } from '../output/renderer-mode.js';
import { runOnFleet } from './fleet-command.js';
import { hostTarget, withHostTargetOptions } from './host-target.js';
import { type InventoryFlags, inventoryTargetsOf, withInventoryOptions } from './inventory-flags.js';

const TITLES: Record<(typeof UNINSTALL_STEPS)[number], string> = {
  connect: 'Connect',
  stop: 'Stop and disable services',
  remove: 'Remove the release',
  report: 'Record',
};

const RESUME_HINT = 'Run `apertus status` to see what the host holds, then the uninstall again.';

interface UninstallFlags extends InventoryFlags {
  purge?: boolean;
  json?: boolean;
}

export function registerUninstall(program: Command, io: CliIO): void {
  const command = withInventoryOptions(
    withHostTargetOptions(
      program
        .command('uninstall')
        .description(
          "Stop and disable a host's services and remove the current release; blobs stay unless --purge (the audit log, trust and service data always stay)",
        ),
      { local: 'this machine', root: 'per-host' },
    ),
    'uninstall from',
  )
    .option('--purge', 'also remove every other release, the image archives and the blob store')
    .option('--json', 'print only the JSON report on stdout')
    .action(async (flags: UninstallFlags) => {
      const { uninstallHost } = await import('../../core/operations/uninstall.js');
      const fleet = await inventoryTargetsOf(flags, io);
      if (fleet) {
        await runOnFleet(
          io,
          fleet,
          { json: flags.json, hint: RESUME_HINT, format: formatUninstallReport },
          (host, signal, onProgress) =>
            uninstallHost({ target: host.target, root: host.root, purge: flags.purge, signal, onProgress }),
        );
        return;
      }
      const target = await hostTarget(flags, io);
      const { runSteps, stepDefinitions } = await import('../output/run-steps.js');
      const { UNINSTALL_STEPS } = await import('../../core/operations/uninstall.js');
      const report = await runInterruptible(io, RESUME_HINT, (signal) =>
        runSteps(io, chooseRendererMode(io, flags), stepDefinitions(UNINSTALL_STEPS, TITLES), (onProgress) =>
          uninstallHost({ target, root: flags.root, purge: flags.purge, signal, onProgress }),
        ),
      );
      if (flags.json) writeJson(io, report);
      else io.stdout.write(formatUninstallReport(report));
    });
  withExamples(command, [
    {
      run: 'uninstall --host root@10.0.0.5',
      does: 'stop the services, remove the current release, keep the blobs',
    },
    { run: 'uninstall --host root@10.0.0.5 --purge', does: 'also every other release and the blob store' },
    { run: 'uninstall --inventory hosts.yaml --limit gpu-0*', does: 'every matching host, 5 at a time' },
  ]);
}

export function formatUninstallReport(report: UninstallReport): string {
  if (!report.changed) return `Nothing to uninstall on ${report.host.transport}\n`;
  const lines = [
    `Uninstalled ${report.release ? `${report.release.name} ${report.release.version}` : 'no current release'} from ${report.host.transport}${report.purge ? ' (purged)' : ''}`,
    `  stopped   ${report.stopped.length > 0 ? report.stopped.map((s) => `${s.name} (${s.port})`).join(', ') : 'no services'}`,
    ...(report.stillListening.length > 0 ? [`  STILL LISTENING ${report.stillListening.join(', ')}`] : []),
    `  removed   ${report.removed.releases.length > 0 ? report.removed.releases.join(', ') : 'no release'}${report.purge ? `; ${report.removed.blobs} blobs (${formatBytes(report.removed.bytes)}), ${report.removed.images} image archives` : ''}`,
    ...report.kept.map((k) => `  kept      ${k}`),
    `  report    ${report.path}`,
  ];
  return `${lines.join('\n')}\n`;
}
