import type { Command } from 'commander';
import { parsePartSize } from '../../core/bundle/part-size.js';
import { splitBundle } from '../../core/bundle/split-bundle.js';
import type { CliIO } from '../io.js';
import { formatSplitParts } from '../output/format-split.js';
import { writeJson } from '../output/json-output.js';
import { chooseRendererMode } from '../output/renderer-mode.js';
import { runSteps } from '../output/run-steps.js';

interface SplitFlags {
  size: string;
  out?: string;
  json?: boolean;
}

export function registerSplit(program: Command, io: CliIO): void {
  program
    .command('split')
    .description(
      'Cut an existing bundle tar into .part-NNN files plus a .parts.json index, for media with a file size limit',
    )
    .argument('<bundle>', 'the bundle tar written by `apertus bundle`')
    .requiredOption('--size <size>', 'size of each part: 4GiB for FAT32, 25GB for BD-R, 700MB, ...')
    .option('-o, --out <dir>', "directory to write the parts and index into (default: the tar's directory)")
    .option('--json', 'print only JSON on stdout')
    .action(async (bundlePath: string, flags: SplitFlags) => {
      const partSize = parsePartSize(flags.size);
      const result = await runSteps(
        io,
        chooseRendererMode(io, flags),
        [{ id: 'split', title: 'Split bundle' }],
        (onProgress) =>
          splitBundle(bundlePath, { partSize, outDir: flags.out, onProgress }).then((r) => {
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
}
