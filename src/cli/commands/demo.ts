import type { Command } from 'commander';
import { type DemoResult, runDemo } from '../../core/demo/run-demo.js';
import type { CliIO } from '../io.js';
import { formatBytes, formatDuration } from '../output/format.js';
import { writeJson } from '../output/json-output.js';
import { chooseRendererMode } from '../output/renderer-mode.js';
import { runSteps } from '../output/run-steps.js';

const STEPS = [
  { id: 'keys', title: 'Generate a signing key' },
  { id: 'bundle', title: 'Bundle bundles/demo' },
  { id: 'verify', title: 'Verify the bundle' },
  { id: 'host', title: 'Create an air-gapped test host' },
  { id: 'install', title: 'Install over SSH and verify the services' },
  { id: 'reinstall', title: 'Install again (only missing blobs travel)' },
  { id: 'teardown', title: 'Tear the test host down' },
];

export function registerDemo(program: Command, io: CliIO): void {
  program
    .command('demo')
    .description(
      'Run the whole journey on the embedded demo stack: bundle, verify, install into an air-gapped test host',
    )
    .option('--keep', 'leave the test host running afterwards')
    .option('-o, --out <dir>', 'where the demo bundle is written', 'out')
    .option('--json', 'print only the JSON result on stdout')
    .action(async (flags: { keep?: boolean; out: string; json?: boolean }) => {
      const result = await runSteps(io, chooseRendererMode(io, flags), STEPS, (onProgress) =>
        runDemo({ outDir: flags.out, keep: flags.keep, onProgress }),
      );
      if (flags.json) writeJson(io, result);
      else io.stdout.write(formatDemoResult(result));
    });
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
