import type { Command } from 'commander';
import type { BundleResult, BundleStep } from '../../core/bundle/bundle.js';
import { keyFile, outputDirectory, partSize } from '../flag-values.js';
import { withExamples } from '../help-text.js';
import { runInterruptible } from '../interrupt.js';
import type { CliIO } from '../io.js';
import { formatBytes, formatDuration } from '../output/format.js';
import { formatSplitParts } from '../output/format-split.js';
import { writeJson } from '../output/json-output.js';
import { chooseRendererMode } from '../output/renderer-mode.js';

interface BundleFlags {
  out: string;
  sign?: string;
  cacheDir?: string;
  hubUrl?: string;
  split?: number;
  since?: string;
  cli?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

export function registerBundle(program: Command, io: CliIO): void {
  const command = program
    .command('bundle')
    .description(
      'Package a recipe into one signed, content-addressed offline bundle (an OCI layout in a tar)',
    )
    .argument('<recipe>', 'recipe directory holding apertus.yaml (e.g. bundles/demo), or the YAML file')
    .option(
      '-o, --out <dir>',
      'directory to write <name>-<version>.tar into',
      outputDirectory('--out'),
      'out',
    )
    .option(
      '--sign <key>',
      'minisign secret key to sign the bundle with (apertus keys generate); read before anything is fetched',
      keyFile('--sign', 'secret'),
    )
    .option(
      '--cache-dir <dir>',
      'keep downloads here between runs (default $XDG_CACHE_HOME/apertus)',
      outputDirectory('--cache-dir'),
    )
    .option(
      '--hub-url <url>',
      'Hugging Face Hub or internal mirror (default $HF_ENDPOINT, else huggingface.co)',
    )
    .option(
      '--split <size>',
      'write the tar as .part-NNN files of SIZE (4GiB for FAT32, 25GB for BD-R) plus a .parts.json index',
      partSize,
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
    .option('--dry-run', 'print the resolved plan (components, files, bytes, disk); write nothing')
    .option('--json', 'print only JSON on stdout')
    .action(async (recipePath: string, flags: BundleFlags) => {
      const [{ bundle, BUNDLE_STEPS }, { defaultCacheDir }, { runSteps, stepDefinitions }] =
        await Promise.all([
          import('../../core/bundle/bundle.js'),
          import('../../core/sources/cache-dir.js'),
          import('../output/run-steps.js'),
        ]);
      // Ctrl-C stops the downloads and keeps their .partial files; the next run resumes them.
      const resumeHint = `Run the same command again: downloads resume from ${flags.cacheDir ?? defaultCacheDir(io.env)}.`;
      const result = await runInterruptible(io, resumeHint, (signal) =>
        runSteps(io, chooseRendererMode(io, flags), stepDefinitions(BUNDLE_STEPS, TITLES), (onProgress) =>
          bundle({
            recipePath,
            outDir: flags.out,
            cacheDir: flags.cacheDir,
            env: io.env,
            hubUrl: flags.hubUrl,
            secretKeyPath: flags.sign,
            dryRun: flags.dryRun,
            partSize: flags.split,
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
  withExamples(command, [
    { run: 'bundle bundles/demo', does: 'the demo stack, unsigned, into out/demo-0.1.0.tar' },
    {
      run: 'bundle bundles/apertus-8b-rag --sign keys/release.key --split 4GiB -o /media/usb',
      does: 'signed, cut into parts a FAT32 stick holds',
    },
    {
      run: 'bundle bundles/apertus-8b-rag --since out/apertus-8b-rag-1.0.0.tar',
      does: 'a delta: only the blobs the old bundle lacks',
    },
    { run: 'bundle bundles/apertus-70b --dry-run', does: 'what would be fetched, and the disk it needs' },
  ]);
}

const TITLES: Record<BundleStep, string> = {
  plan: 'Resolve recipe',
  fetch: 'Fetch sources',
  write: 'Write bundle',
};

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
    for (const verdict of result.offline) {
      lines.push(
        ...(verdict.status === 'ok'
          ? [`  offline    ok   ${verdict.service}/${verdict.component}: every file vLLM reads at start`]
          : verdict.findings.map(
              (f) =>
                `  offline    ${f.status.padEnd(4)} ${verdict.service}/${verdict.component}: ${f.file ? `${f.file}: ` : ''}${f.detail}. ${f.fix}`,
            )),
      );
    }
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
