import type { Command } from 'commander';
import { existingBundle, outputDirectory, partSize } from '../flag-values.js';
import { withExamples } from '../help-text.js';
import type { CliIO } from '../io.js';
import { formatSplitParts } from '../output/format-split.js';
import { writeJson } from '../output/json-output.js';
import { chooseRendererMode } from '../output/renderer-mode.js';

interface SplitFlags {
  size: number;
  out?: string;
  json?: boolean;
}

export function registerSplit(program: Command, io: CliIO): void {
  const command = program
    .command('split')
    .description(
      'Cut an existing bundle tar into .part-NNN files plus a .parts.json index, for media with a file size limit',
    )
    .argument('<bundle>', 'the bundle tar written by `apertus bundle`', existingBundle())
    .requiredOption('--size <size>', 'size of each part: 4GiB for FAT32, 25GB for BD-R, 700MB, ...', partSize)
    .option(
      '-o, --out <dir>',
      "directory to write the parts and index into (default: the tar's directory)",
      outputDirectory('--out'),
    )
    .option('--json', 'print only JSON on stdout')
    .action(async (bundlePath: string, flags: SplitFlags) => {
      const [{ splitBundle }, { runSteps }] = await Promise.all([
        import('../../core/bundle/split-bundle.js'),
        import('../output/run-steps.js'),
      ]);
      const result = await runSteps(
        io,
        chooseRendererMode(io, flags),
        [{ id: 'split', title: 'Split bundle' }],
        (onProgress) =>
          splitBundle(bundlePath, { partSize: flags.size, outDir: flags.out, onProgress }).then((r) => {
            onProgress({ step: 'split', status: 'ok', detail: `${r.index.parts.length} parts` });
            return r;
          }),
      );
      if (flags.json) {
        writeJson(io, result);
        return;
      }
      const lines = [
        `Split ${result.name} ${result.version} (${result.source}) into ${result.index.parts.length} parts`,
        `  index      ${result.path}`,
        ...formatSplitParts(result.index, result.checksumsPath),
        `  verify or install with the index: apertus verify ${result.path}`,
      ];
      io.stdout.write(`${lines.join('\n')}\n`);
    });
  withExamples(command, [
    { run: 'split out/apertus-8b-rag-1.0.0.tar --size 4GiB', does: 'parts a FAT32 stick holds' },
    { run: 'split out/apertus-70b-1.0.0.tar --size 25GB -o /media/bdr', does: 'parts for BD-R discs' },
  ]);
}
