import type { Command } from 'commander';
import { outputPrefix } from '../flag-values.js';
import { withExamples } from '../help-text.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../output/json-output.js';

export function registerKeys(program: Command, io: CliIO): void {
  const keys = program.command('keys').description('Manage bundle signing keys (minisign format)');
  const generate = keys
    .command('generate')
    .description('Generate an Ed25519 key pair: PREFIX.key (secret, mode 0600) and PREFIX.pub')
    .requiredOption(
      '-o, --out <prefix>',
      'path prefix of the two files, e.g. keys/release',
      outputPrefix('--out'),
    )
    .option('--json', 'print only JSON on stdout')
    .action(async (flags: { out: string; json?: boolean }) => {
      const { generateKeyPair } = await import('../../core/sign/keys.js');
      const pair = await generateKeyPair(flags.out);
      if (flags.json) writeJson(io, pair);
      else {
        io.stdout.write(`secret key ${pair.secretKeyPath} (keep it off the bundle media)\n`);
        io.stdout.write(`public key ${pair.publicKeyPath} (key id ${pair.keyId})\n`);
        io.stdout.write(`verify with: minisign -Vm SHA256SUMS -p ${pair.publicKeyPath}\n`);
      }
    });
  withExamples(generate, [
    {
      run: 'keys generate -o keys/release',
      does: 'keys/release.key signs bundles (bundle --sign), keys/release.pub checks them (verify --key)',
    },
  ]);
}
