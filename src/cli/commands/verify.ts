import type { Command } from 'commander';
import { existingBundle, keyFile } from '../flag-values.js';
import { withExamples } from '../help-text.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../output/json-output.js';
import { chooseRendererMode } from '../output/renderer-mode.js';
import { ReportedFailure } from '../reported-failure.js';

interface VerifyFlags {
  key?: string;
  all?: boolean;
  json?: boolean;
}

export function registerVerify(program: Command, io: CliIO): void {
  const command = program
    .command('verify')
    .description('Re-hash every file of a bundle, check its signature and manifests; name each bad item')
    .argument(
      '<bundle>',
      'bundle tar, split bundle (its .tar.parts.json index) or directory',
      existingBundle(),
    )
    .option('--key <file>', 'minisign public key the signature must verify with', keyFile('--key', 'public'))
    .option('--all', 'list every item checked, not only the bad ones')
    .option('--json', 'print only JSON on stdout')
    .action(async (bundlePath: string, flags: VerifyFlags) => {
      const [{ PASSING_STATUSES, verifyBundle }, { runSteps }] = await Promise.all([
        import('../../core/verify/verify-bundle.js'),
        import('../output/run-steps.js'),
      ]);
      const result = await runSteps(
        io,
        chooseRendererMode(io, flags),
        [{ id: 'verify', title: 'Verify bundle' }],
        (onProgress) =>
          verifyBundle(bundlePath, {
            publicKeyPath: flags.key,
            onProgress: (event) => onProgress({ ...event, step: 'verify' }),
          }).then((r) => {
            onProgress({ step: 'verify', status: r.ok ? 'ok' : 'fail', detail: `${r.results.length} items` });
            return r;
          }),
      );
      if (flags.json) writeJson(io, result);
      else {
        // A delta leaves out every unchanged blob: one line for them unless --all asks for each.
        const inBase = result.results.filter((r) => r.status === 'in-base');
        const shown = flags.all
          ? result.results
          : result.results.filter((r) => r.status !== 'ok' && r.status !== 'in-base');
        for (const item of shown) {
          io.stdout.write(
            `${item.status.padEnd(16)} ${item.subject}${item.detail ? `  ${item.detail}` : ''}\n`,
          );
        }
        if (inBase.length > 0 && !flags.all) {
          io.stdout.write(
            `${'in-base'.padEnd(16)} ${inBase.length} blobs left out of this delta; the host must hold them from the base release (--all lists them)\n`,
          );
        }
        if (result.split !== null && !result.split.contentsChecked) {
          io.stdout.write(
            `${result.split.badParts} of ${result.split.parts} parts bad; the bundle's contents were not checked. Copy the parts named above again from their media, then run apertus verify again.\n`,
          );
        }
        const bad = result.results.filter((r) => !PASSING_STATUSES.has(r.status)).length;
        io.stdout.write(
          result.ok
            ? `ok: ${result.results.length} items verified${result.signed ? ', signature ok' : ' (signature not checked: pass --key)'}\n`
            : `FAILED: ${bad} of ${result.results.length} items bad\n`,
        );
      }
      if (!result.ok) throw new ReportedFailure();
    });
  withExamples(command, [
    {
      run: 'verify out/demo-0.1.0.tar --key keys/release.pub',
      does: 'every file, the manifests and the signature',
    },
    {
      run: 'verify /media/usb/apertus-8b-rag-1.0.0.tar.parts.json',
      does: 'a split bundle: each part first, then what they hold',
    },
  ]);
}
