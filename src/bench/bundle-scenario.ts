/**
 * `npm run bench -- --scenario bundle --size 2GiB`: the connected side as an operator runs
 * it. A model directory of random shards plus a config.json, bundled by `bin/apertus.js
 * bundle` (the whole CLI process, timed and its peak RSS read by GNU time, like the tools)
 * against GNU tar of the same directory; then config.json and one shard change, and
 * `apertus bundle --since OLD.tar` writes the delta against GNU tar's own incremental
 * archive (--listed-incremental) of the same change.
 */
import { copyFile, mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKeyPair } from '../core/sign/keys.js';
import { describeMachine } from './machine.js';
import { findGnuTime, measureCommand, runProcess, type Sample } from './measure.js';
import { type BenchReport, type BenchRow, statisticOf } from './report.js';
import { runGroup } from './run-group.js';

const APERTUS_BIN = fileURLToPath(new URL('../../bin/apertus.js', import.meta.url));
/** Shards of at most this size, like the 5 GB-ish shards of real checkpoints, scaled down. */
const SHARD_BYTES = 512 << 20;
const NAME = 'bench-model';

export interface BundleScenarioOptions {
  sizeBytes: number;
  runs: number;
  /** The temp dir the harness made and removes. */
  work: string;
  signal: AbortSignal;
  log: (line: string) => void;
  writeRandomFile: (path: string, size: number, signal: AbortSignal) => Promise<void>;
}

export async function runBundleScenario(options: BundleScenarioOptions): Promise<BenchReport> {
  const { work, signal, log } = options;
  const machine = await describeMachine();
  const gnuTime = await findGnuTime();
  const shown = (text: string) => text.replaceAll(work, '$BENCH');
  const measureTool = (argv: string[]): Promise<Sample> =>
    measureCommand(argv, { signal, gnuTime, scratchDir: work });
  const fresh =
    (...paths: string[]) =>
    async () => {
      await runProcess(['rm', '-rf', ...paths], { signal });
      await runProcess(['sync'], { signal });
    };

  // The model: N random shards and a config.json, and two recipes over it (1.0.0 and 2.0.0).
  const modelDir = join(work, 'model');
  await mkdir(modelDir, { recursive: true });
  const shardCount = Math.max(1, Math.ceil(options.sizeBytes / SHARD_BYTES));
  const shards: string[] = [];
  const generated = performance.now();
  for (let index = 1; index <= shardCount; index++) {
    const shard = join(
      modelDir,
      `model-${String(index).padStart(5, '0')}-of-${String(shardCount).padStart(5, '0')}.bin`,
    );
    const size = Math.min(SHARD_BYTES, options.sizeBytes - (index - 1) * SHARD_BYTES);
    await options.writeRandomFile(shard, size, signal);
    shards.push(shard);
  }
  const config = join(modelDir, 'config.json');
  await writeFile(config, `${JSON.stringify({ architectures: ['BenchModel'], torch_dtype: 'bfloat16' })}\n`);
  log(
    `  data: ${((performance.now() - generated) / 1000).toFixed(2)} s to write ${shardCount} shards and config.json`,
  );
  const recipe = async (version: string): Promise<string> => {
    const dir = join(work, `recipe-${version}`);
    await mkdir(dir, { recursive: true });
    await writeFile(
      join(dir, 'apertus.yaml'),
      `apiVersion: apertus.dev/v1\nkind: Bundle\nmetadata:\n  name: ${NAME}\n  version: ${version}\n  description: npm run bench -- --scenario bundle\ncomponents:\n  - name: model\n    kind: model\n    source: file:../model\n    license: Apache-2.0\n`,
    );
    return dir;
  };
  const keys = await generateKeyPair(join(work, 'key', 'bench'));
  const cacheDir = join(work, 'cache');
  const apertusBundle = (recipeDir: string, outDir: string, extra: string[] = []) => [
    process.execPath,
    APERTUS_BIN,
    'bundle',
    recipeDir,
    '-o',
    outDir,
    '--sign',
    keys.secretKeyPath,
    '--cache-dir',
    cacheDir,
    ...extra,
    '--json',
  ];

  const fullOut = join(work, 'full');
  const fullTar = join(fullOut, `${NAME}-1.0.0.tar`);
  const tarDir = join(work, 'tar');
  const tarFile = join(tarDir, 'model.tar');
  await mkdir(tarDir, { recursive: true });
  const snapshot0 = join(tarDir, 'model.snar.0');
  const tarArgv = ['tar', '-cf', tarFile, '-C', work, 'model'];
  const tarSync = `tar -cf "$1" -C "$2" model && sync "$1"`;
  const v1 = await recipe('1.0.0');
  const bundleArgv = apertusBundle(v1, fullOut);
  const bundleRows = await runGroup(
    'bundle',
    [
      {
        tool: 'apertus',
        operation: 'apertus bundle (CLI process: plan, hash, copy, sign, fsync)',
        command: shown(bundleArgv.join(' ')),
        bytes: options.sizeBytes,
        prepare: fresh(fullOut),
        run: () => measureTool(bundleArgv),
      },
      {
        tool: 'GNU tar',
        operation: 'tar -cf MODEL_DIR',
        command: shown(tarArgv.join(' ')),
        bytes: options.sizeBytes,
        prepare: fresh(tarFile),
        run: () => measureTool(tarArgv),
      },
      {
        tool: 'GNU tar',
        operation: 'tar -cf MODEL_DIR && sync FILE (durable, as apertus)',
        command: shown(`sh -c '${tarSync}' sh ${tarFile} ${work}`),
        bytes: options.sizeBytes,
        prepare: fresh(tarFile),
        run: () => measureTool(['sh', '-c', tarSync, 'sh', tarFile, work]),
      },
    ],
    { runs: options.runs, signal, log },
  );
  // Level 0 of GNU tar's incremental backup: its snapshot file is the base the delta is cut against.
  await runProcess(['rm', '-f', tarFile], { signal });
  const level0 = await runProcess(
    ['tar', `--listed-incremental=${snapshot0}`, '-cf', join(tarDir, 'level0.tar'), '-C', work, 'model'],
    { signal },
  );
  if (level0.code !== 0) throw new Error(`tar --listed-incremental (level 0) failed: ${level0.stderr}`);
  const fullBytes = (await stat(fullTar)).size;

  // Two changes, each bundled as a delta since 1.0.0: first config.json alone (one small
  // file), then also one shard replaced (a fine-tune that touched one shard).
  const snapshot1 = join(tarDir, 'model.snar.1');
  const level1 = join(tarDir, 'level1.tar');
  const incrementalArgv = ['tar', `--listed-incremental=${snapshot1}`, '-cf', level1, '-C', work, 'model'];
  const measureDelta = async (version: string, what: string) => {
    const deltaOut = join(work, `delta-${version}`);
    const deltaTar = join(deltaOut, `${NAME}-${version}-since-1.0.0.tar`);
    const deltaArgv = apertusBundle(await recipe(version), deltaOut, ['--since', fullTar]);
    const rows = await runGroup(
      'delta',
      [
        {
          tool: 'apertus',
          operation: `apertus bundle --since OLD.tar, ${what} (CLI process)`,
          command: shown(deltaArgv.join(' ')),
          bytes: options.sizeBytes,
          prepare: fresh(deltaOut),
          run: async () => withSize(await measureTool(deltaArgv), deltaTar),
        },
        {
          tool: 'GNU tar',
          operation: `tar --listed-incremental level 1, ${what}`,
          command: shown(incrementalArgv.join(' ')),
          bytes: options.sizeBytes,
          prepare: async () => {
            await fresh(level1)();
            await copyFile(snapshot0, snapshot1);
          },
          run: async () => withSize(await measureTool(incrementalArgv), level1),
        },
      ],
      { runs: options.runs, signal, log },
    );
    return {
      rows,
      deltaBytes: Number(rows[0]?.detail.outputBytes ?? Number.NaN),
      incrementalBytes: Number(rows[1]?.detail.outputBytes ?? Number.NaN),
    };
  };

  await writeFile(
    config,
    `${JSON.stringify({ architectures: ['BenchModel'], torch_dtype: 'bfloat16', fine_tuned: true })}\n`,
  );
  const configBytes = (await stat(config)).size;
  const oneFile = await measureDelta('2.0.0', 'config.json changed');

  const changedShard = shards[shards.length - 1] as string;
  const changedShardBytes = (await stat(changedShard)).size;
  await options.writeRandomFile(changedShard, changedShardBytes, signal);
  const oneShard = await measureDelta('3.0.0', 'config.json + 1 shard changed');

  const results: BenchRow[] = [...bundleRows, ...oneFile.rows, ...oneShard.rows];
  return {
    sizeBytes: options.sizeBytes,
    runs: options.runs,
    statistic: statisticOf(options.runs),
    machine,
    results,
    skipped: [],
    upload: { demoHost: null, apertusCipher: null, opensshCipher: null, scpProtocol: null },
    notes: [
      `Model directory: ${shardCount} random shards and a config.json, ${options.sizeBytes} bytes of shards. Full bundle: ${fullBytes} bytes.`,
      `Delta after changing one file (config.json, ${configBytes} bytes): apertus bundle --since wrote ${oneFile.deltaBytes} bytes (${pct(oneFile.deltaBytes, fullBytes)} of the full bundle: the file plus the manifests, bundle config, recipe and other metadata blobs, SHA256SUMS and signature); GNU tar's level-1 incremental archive is ${oneFile.incrementalBytes} bytes.`,
      `Delta after also replacing ${changedShard.replace(`${work}/`, '')} (${changedShardBytes} bytes): ${oneShard.deltaBytes} bytes (${pct(oneShard.deltaBytes, fullBytes)}); tar level 1: ${oneShard.incrementalBytes} bytes.`,
      'The delta re-reads every source to hash it (content, not mtime, decides what is left out); only what the base lacks is written.',
      `apertus rows time the whole CLI process (Node start-up, recipe, plan, write, sign, fsync); peak RSS is GNU time's %M of that process${gnuTime ? '' : ' (n/a: /usr/bin/time is not installed)'}. tar -cf does not fsync; compare with the '&& sync' row.`,
    ],
  };
}

async function withSize(sample: Sample, path: string): Promise<Sample> {
  return { ...sample, detail: { ...sample.detail, outputBytes: (await stat(path)).size } };
}

function pct(part: number, whole: number): string {
  return `${((part / whole) * 100).toFixed(3)}%`;
}
