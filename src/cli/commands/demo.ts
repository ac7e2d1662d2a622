import type { Command } from 'commander';
import type { DEMO_STEPS, DemoResult } from '../../core/demo/run-demo.js';
import { ApertusError } from '../../core/errors.js';
import { outputDirectory } from '../flag-values.js';
import { withExamples } from '../help-text.js';
import type { CliIO } from '../io.js';
import { formatBytes, formatDuration } from '../output/format.js';
import { writeJson } from '../output/json-output.js';
import { chooseRendererMode } from '../output/renderer-mode.js';

const TITLES: Record<(typeof DEMO_STEPS)[number], string> = {
  keys: 'Generate a signing key',
  bundle: 'Bundle bundles/demo',
  verify: 'Verify the bundle',
  host: 'Create an air-gapped test host',
  install: 'Install over SSH and verify the services',
  reinstall: 'Install again (only missing blobs travel)',
  teardown: 'Tear the test host down',
};

export function registerDemo(program: Command, io: CliIO): void {
  const command = program
    .command('demo')
    .description(
      'Run the whole journey on the embedded demo stack: bundle, verify, install into an air-gapped test host',
    )
    .option('--keep', 'leave the test host running afterwards (`apertus demo --down` removes it)')
    .option(
      '--down [id]',
      'stop and remove the hosts `demo --keep` left on this machine (or the one named), services included',
    )
    .option('-o, --out <dir>', 'where the demo bundle is written', outputDirectory('--out'), 'out')
    .option('--json', 'print only the JSON result on stdout')
    .action(async (flags: { keep?: boolean; down?: boolean | string; out: string; json?: boolean }) => {
      if (flags.down) {
        await takeDown(io, flags);
        return;
      }
      const [{ DEMO_STEPS, runDemo }, { runSteps, stepDefinitions }] = await Promise.all([
        import('../../core/demo/run-demo.js'),
        import('../output/run-steps.js'),
      ]);
      const steps = stepDefinitions(DEMO_STEPS, TITLES);
      const result = await runSteps(io, chooseRendererMode(io, flags), steps, (onProgress) =>
        runDemo({ outDir: flags.out, keep: flags.keep, onProgress }),
      );
      if (flags.json) writeJson(io, result);
      else io.stdout.write(formatDemoResult(result));
    });
  withExamples(command, [
    { run: 'demo', does: 'bundle, verify and install the demo stack into a throwaway air-gapped host' },
    { run: 'demo --keep', does: 'leave the host and its services running to try them' },
    { run: 'demo --down', does: 'stop and remove the hosts --keep left, with their services' },
  ]);
}

async function takeDown(
  io: CliIO,
  flags: { keep?: boolean; down?: boolean | string; json?: boolean },
): Promise<void> {
  if (flags.keep) {
    throw new ApertusError('usage', '--down and --keep exclude each other.', {
      hint: 'Run `apertus demo --down` alone to remove the kept hosts, or `apertus demo --keep` to make one.',
    });
  }
  const { removeKeptHosts } = await import('../../core/demo-host/kept-hosts.js');
  const removed = await removeKeptHosts(typeof flags.down === 'string' ? flags.down : undefined);
  if (flags.json) {
    writeJson(io, { ok: true, removed });
    return;
  }
  if (removed.length === 0) {
    io.stdout.write('No kept demo host on this machine\n');
    return;
  }
  const lines = removed.map(
    (h) =>
      `Removed ${h.mode} demo host ${h.id}${h.address ? ` (${h.address})` : ''}: stopped ${h.stopped.length > 0 ? h.stopped.join(', ') : 'no services'}${h.containers > 0 ? `, ${h.containers} containers` : ''}${h.sshdStopped ? ', sshd' : ''}${h.namespaceDeleted ? ', namespace deleted' : ''}`,
  );
  io.stdout.write(`${lines.join('\n')}\n`);
}

function formatDemoResult(result: DemoResult): string {
  const lines = [
    `Demo ${result.ok ? 'ok' : 'FAILED'} in ${formatDuration(result.wallMs)}`,
    `  bundle     ${result.bundle.path} (${formatBytes(result.bundle.size)}, signed)`,
    `  host       ${result.host.mode}${result.host.address ? ` ${result.host.address}` : ''}: ${result.host.reason}`,
    `  install    ${formatBytes(result.install.transfer.bytesUploaded)} uploaded; again: ${formatBytes(result.reinstall.bytesUploaded)}`,
    ...result.install.checks.map(
      (c) => `  ${c.status === 'ok' ? 'ok  ' : 'FAIL'}       ${c.id}: ${c.detail}`,
    ),
    `  report     ${result.install.path}${result.host.kept ? '' : ' (removed with the test host; --json prints it)'}`,
    ...result.next.map((line) => `  next       ${line}`),
  ];
  return `${lines.join('\n')}\n`;
}
