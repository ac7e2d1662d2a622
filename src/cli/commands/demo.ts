import type { Command } from 'commander';
import type { DEMO_STEPS, DemoResult } from '../../core/demo/run-demo.js';
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
    .option('--keep', 'leave the test host running afterwards')
    .option('-o, --out <dir>', 'where the demo bundle is written', outputDirectory('--out'), 'out')
    .option('--json', 'print only the JSON result on stdout')
    .action(async (flags: { keep?: boolean; out: string; json?: boolean }) => {
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
  ]);
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
