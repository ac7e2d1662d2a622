import type { Command } from 'commander';
import { existingBundle } from '../flag-values.js';
import { withExamples } from '../help-text.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../output/json-output.js';
import { chooseRendererMode } from '../output/renderer-mode.js';

interface MirrorFlags {
  to: string;
  insecure?: boolean;
  json?: boolean;
}

export function registerMirror(program: Command, io: CliIO): void {
  const command = program
    .command('mirror')
    .description(
      "Push every component of a bundle into a registry inside the gap, digests unchanged: images under their source's name and tag, models as ModelPack artifacts",
    )
    .argument('<bundle>', 'the bundle (tar, split index or directory)', existingBundle())
    .requiredOption('--to <registry[/prefix]>', 'the registry, and a path every repository goes under')
    .option('--insecure', 'plain HTTP to the registry (a lab registry without TLS)')
    .option('--json', 'print only JSON on stdout')
    .action(async (bundlePath: string, flags: MirrorFlags) => {
      const [{ mirrorBundle }, { runSteps }] = await Promise.all([
        import('../../core/operations/mirror.js'),
        import('../output/run-steps.js'),
      ]);
      const result = await runSteps(
        io,
        chooseRendererMode(io, flags),
        [{ id: 'mirror', title: `Mirror into ${flags.to}` }],
        (onProgress) =>
          mirrorBundle(bundlePath, {
            to: flags.to,
            insecure: flags.insecure ?? false,
            env: io.env,
            onProgress,
          }),
      );
      if (flags.json) {
        writeJson(io, result);
        return;
      }
      const lines = [
        `Mirrored ${result.bundle.name} ${result.bundle.version} into ${result.registry} (${result.bytesPushed} bytes sent)`,
        ...result.manifests.map(
          (m) =>
            `  ${m.name.padEnd(16)} ${m.kind.padEnd(8)} ${m.repository}:${m.tag}@${m.digest}  (${m.blobs.pushed} sent, ${m.blobs.present} already there)`,
        ),
      ];
      io.stdout.write(`${lines.join('\n')}\n`);
    });
  withExamples(command, [
    {
      run: 'mirror apertus-8b-rag-1.0.0.tar --to registry.internal:5000/apertus',
      does: 'every component, tags kept',
    },
    {
      run: 'mirror apertus-8b-rag-1.0.0.tar --to 127.0.0.1:5000 --insecure --json',
      does: 'a lab registry without TLS; the references as JSON',
    },
  ]);
}
