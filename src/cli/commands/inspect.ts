import type { Command } from 'commander';
import { inspectBundle } from '../../core/bundle/inspect-bundle.js';
import type { CliIO } from '../io.js';
import { formatBytes } from '../output/format.js';
import { writeJson } from '../output/json-output.js';

export function registerInspect(program: Command, io: CliIO): void {
  program
    .command('inspect')
    .description('Show what a bundle holds: components, services, requirements, signature')
    .argument('<bundle>', 'bundle tar, split bundle (its .tar.parts.json index) or directory')
    .option('--json', 'print only JSON on stdout')
    .action(async (bundlePath: string, flags: { json?: boolean }) => {
      const summary = await inspectBundle(bundlePath);
      if (flags.json) {
        writeJson(io, summary);
        return;
      }
      const lines = [
        `${summary.name} ${summary.version}  (format ${summary.formatVersion}, ${formatBytes(summary.totalSize)})`,
        `  manifest   ${summary.manifestDigest}`,
        `  signature  ${summary.signed ? `minisign key ${summary.keyId}` : 'none'}`,
        ...summary.components.map(
          (c) =>
            `  component  ${c.name.padEnd(10)} ${c.kind.padEnd(8)} ${String(c.layers).padStart(4)} layers ${formatBytes(c.bytes).padStart(10)}`,
        ),
        ...summary.services.map(
          (s) => `  service    ${s.name.padEnd(10)} ${s.runtime} ${s.model.id} on port ${s.port}`,
        ),
      ];
      io.stdout.write(`${lines.join('\n')}\n`);
    });
}
