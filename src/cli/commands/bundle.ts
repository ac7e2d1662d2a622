import type { Command } from 'commander';
import { type BundleResult, bundle } from '../../core/bundle/bundle.js';
import { parsePartSize } from '../../core/bundle/part-size.js';
import { defaultCacheDir } from '../../core/sources/cache-dir.js';
import { runInterruptible } from '../interrupt.js';
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
  since?: string;
  cli?: boolean;
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
    .option(
      '--since <old>',
      'write a delta: leave out the blobs this old bundle (.tar, .parts.json, directory) or digest list holds',
    )
    .option(
      '--cli',
      'carry the apertus CLI and its Node under apertus/ (the default, except for a delta with --since)',
    )
    .option('--no-cli', 'leave the apertus CLI out (the host side already has apertus)')
    .option('--dry-run', 'print the resolved plan (components, files, bytes); write nothing')
    .option('--json', 'print only JSON on stdout')
    .action(async (recipePath: string, flags: BundleFlags) => {
      const partSize = flags.split === undefined ? undefined : parsePartSize(flags.split);
      const steps = [
        { id: 'plan', title: 'Resolve recipe' },
        { id: 'fetch', title: 'Fetch sources' },
        { id: 'write', title: 'Write bundle' },
      ];
      // Ctrl-C stops the downloads and keeps their .partial files; the next run resumes them.
      const resumeHint = `Run the same command again: downloads resume from ${flags.cacheDir ?? defaultCacheDir(io.env)}.`;
      const result = await runInterruptible(io, resumeHint, (signal) =>
        runSteps(io, chooseRendererMode(io, flags), steps, (onProgress) =>
          bundle({
            recipePath,
            outDir: flags.out,
            cacheDir: flags.cacheDir,
            env: io.env,
            hubUrl: flags.hubUrl,
            secretKeyPath: flags.sign,
            dryRun: flags.dryRun,
            partSize,
            since: flags.since,
            cli: flags.cli,
            signal,
            onProgress,
          }),
        ),
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
    ...(result.cli === null
      ? []
      : [
          `  cli        apertus/: apertus ${result.cli.version} on Node ${result.cli.node}, ${result.cli.files} files ${formatBytes(result.cli.bytes)} (--no-cli leaves it out)`,
        ]),
    `  total      ${formatBytes(plan.totalBytes + (result.cli?.bytes ?? 0))}`,
    ...result.disk.map(
      (d) =>
        `  disk       ${d.ok ? 'ok  ' : 'FULL'} needs ${formatBytes(d.neededBytes)}, ${formatBytes(d.freeBytes)} free: ${d.paths.map((p) => `${p.path} (${p.purpose === 'downloads' ? 'downloads, at most' : p.purpose})`).join(', ')}`,
    ),
  ];
  if (!result.dryRun) {
    lines.push(
      `  wrote      ${result.path} (${formatBytes(result.size)}, ${result.blobs} blobs, ${result.signed ? 'signed' : 'NOT signed'}) in ${formatDuration(result.ms)}`,
      `  manifest   ${result.manifestDigest}`,
    );
    if (result.cli !== null)
      lines.push(
        `  installer  tar -xf ${result.path} apertus/ gives apertus/bin/apertus, which needs nothing installed`,
      );
    if (result.omitted !== undefined)
      lines.push(
        `  delta      left out ${result.omitted.blobs} blobs (${formatBytes(result.omitted.bytes)}) the base holds`,
      );
    if (result.split !== null)
      lines.push(...formatSplitParts(result.split.index, result.split.checksumsPath));
  }
  return `${lines.join('\n')}\n`;
}
