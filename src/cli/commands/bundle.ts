import type { Command } from 'commander';
import { type BundleResult, bundle } from '../../core/bundle/bundle.js';
import { parsePartSize } from '../../core/bundle/part-size.js';
import type { CliIO } from '../io.js';
import { formatBytes, formatDuration } from '../output/format.js';
import { formatSplitParts } from '../output/format-split.js';
import { writeJson } from '../output/json-output.js';
import { chooseRendererMode } from '../output/renderer-mode.js';
import { runSteps } from '../output/run-steps.js';

interface BundleFlags {
  out: string;
  sign?: string;
  cacheDir?: string;
  hubUrl?: string;
  split?: string;
  dryRun?: boolean;
  json?: boolean;
}

export function registerBundle(program: Command, io: CliIO): void {
  program
    .command('bundle')
    .description(
      'Package a recipe into one signed, content-addressed offline bundle (an OCI layout in a tar)',
    )
    .argument('<recipe>', 'recipe directory holding apertus.yaml (e.g. bundles/demo), or the YAML file')
    .option('-o, --out <dir>', 'directory to write <name>-<version>.tar into', 'out')
    .option('--sign <key>', 'minisign secret key to sign the bundle with (apertus keys generate)')
    .option('--cache-dir <dir>', 'keep downloads here between runs (default $XDG_CACHE_HOME/apertus)')
    .option(
      '--hub-url <url>',
      'Hugging Face Hub or internal mirror (default $HF_ENDPOINT, else huggingface.co)',
    )
    .option(
      '--split <size>',
      'write the tar as .part-NNN files of SIZE (4GiB for FAT32, 25GB for BD-R) plus a .parts.json index',
    )
    .option('--dry-run', 'print the resolved plan (components, files, bytes); write nothing')
    .option('--json', 'print only JSON on stdout')
    .action(async (recipePath: string, flags: BundleFlags) => {
      const partSize = flags.split === undefined ? undefined : parsePartSize(flags.split);
      const steps = [
        { id: 'plan', title: 'Resolve recipe' },
        { id: 'fetch', title: 'Fetch sources' },
        { id: 'write', title: 'Write bundle' },
      ];
      const result = await runSteps(io, chooseRendererMode(io, flags), steps, (onProgress) =>
        bundle({
          recipePath,
          outDir: flags.out,
          cacheDir: flags.cacheDir,
          env: io.env,
          hubUrl: flags.hubUrl,
          secretKeyPath: flags.sign,
          dryRun: flags.dryRun,
          partSize,
          onProgress,
        }),
      );
      if (flags.json) writeJson(io, result);
      else io.stdout.write(formatBundleResult(result));
    });
}

function formatBundleResult(result: BundleResult): string {
  const { plan } = result;
  const lines = [
    `${result.dryRun ? 'Plan for' : 'Bundled'} ${plan.name} ${plan.version} from ${plan.recipe}`,
    ...plan.components.map(
      (c) =>
        `  ${c.name.padEnd(10)} ${c.kind.padEnd(8)} ${String(c.files).padStart(5)} files ${formatBytes(c.bytes).padStart(10)}  ${c.source}${c.license ? ` (${c.license})` : ''}`,
    ),
    `  total      ${formatBytes(plan.totalBytes)}; needs about that much free disk in ${plan.outPath}`,
  ];
  if (!result.dryRun) {
    lines.push(
      `  wrote      ${result.path} (${formatBytes(result.size)}, ${result.blobs} blobs, ${result.signed ? 'signed' : 'NOT signed'}) in ${formatDuration(result.ms)}`,
      `  manifest   ${result.manifestDigest}`,
    );
    if (result.split !== null)
      lines.push(...formatSplitParts(result.split.index, result.split.checksumsPath));
  }
  return `${lines.join('\n')}\n`;
}
