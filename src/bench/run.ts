/**
 * `npm run bench`: apertus against the standard tools on the same data, in one run.
 * Bundle writing against GNU tar, verification against sha256sum and openssl, and the
 * upload path (connectSsh + transferBlobs) against scp and `ssh 'cat > f'` into a demo
 * host. Each measurement runs several times and the best is reported, with the machine.
 *
 * Not a test: it asserts nothing, and vitest never loads it (it includes test/**\/*.test.ts).
 * Everything it makes lives in one temp dir, removed at the end, on failure and on Ctrl-C.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createDemoHost, type DemoHost } from '../core/demo-host/demo-host.js';
import { parseHostAddress } from '../core/host/host-address.js';
import { quoteArg } from '../core/host/shell-quote.js';
import { connectSsh } from '../core/host/ssh-transport.js';
import { bundleFileName } from '../core/layout/names.js';
import { type GeneratedKeyPair, generateKeyPair } from '../core/sign/keys.js';
import { runBundleScenario } from './bundle-scenario.js';
import { describeMachine, type Machine } from './machine.js';
import { findGnuTime, measureCommand, measureWorker, runProcess, type Sample } from './measure.js';
import { opensshCipher, opensshTarget } from './openssh.js';
import { type BenchReport, type BenchRow, formatReport, formatSize, statisticOf } from './report.js';
import { type GroupContext, type Measurement, runGroup } from './run-group.js';
import { runTransferScenario } from './transfer-scenario.js';
import { BENCH_BUNDLE, runWorker, type WorkerJob } from './worker.js';

type Scenario = 'io' | 'bundle' | 'transfer';

interface BenchOptions {
  sizeBytes: number;
  runs: number;
  dir: string;
  json: boolean;
  /**
   * 'io': write, verify and upload of one file; 'bundle': the CLI on a model dir, then a
   * delta; 'transfer': install onto one host against scp, and onto N hosts.
   */
  scenario: Scenario;
  /** Hosts of the transfer scenario's fleet install. */
  hosts: number;
}

/** Sizes when --size is not given: the transfer goals are stated for 2 GiB. */
const DEFAULT_SIZES: Record<Scenario, string> = { io: '1GiB', bundle: '1GiB', transfer: '2GiB' };

const USAGE = `usage: node dist/bench/run.js [--only io|bundle|transfer] [--size SIZE] [--runs 2] [--hosts 4] [--dir DIR] [--json]
  --only       one scenario (--scenario is the same); without it, io and then transfer run:
               io: bundle write, verify and upload of one file against tar, sha256sum, openssl, scp, ssh;
               bundle: \`apertus bundle\` of a model dir of shards against tar, then one shard and config.json
               change and \`apertus bundle --since\` against tar --listed-incremental (try --size 2GiB);
               transfer: a verified install of a bundle with one model file onto a demo host against scp of
               the file on the same cipher, and the install onto --hosts hosts at once against one
  --size SIZE  random data to measure with: bytes, or with KiB/MiB/GiB (K/M/G) or KB/MB/GB;
               default 1GiB (io, bundle), 2GiB (transfer)
  --hosts N    hosts of the transfer scenario's fleet install; default 4
  --runs N     runs of each measurement, the best one is reported; default 2
  --dir DIR    parent of the temp dir holding data, bundle and copies (about 3x SIZE); default ${tmpdir()}
  --json       print the results as JSON on stdout (progress stays on stderr)
The upload and transfer rows need root (demo hosts are network namespaces) and OpenSSH's sshd.`;

const ENTRY = fileURLToPath(import.meta.url);
const DATA_FILE = 'data.bin';
/** Written in blocks this large: fast to make, never repeated within the file. */
const RANDOM_BLOCK = 16 << 20;

async function main(argv: string[]): Promise<number> {
  if (argv[0] === '--worker') return workerMain(argv[1]);
  let runsOf: BenchOptions[] | 'help';
  try {
    runsOf = parseBenchArgs(argv);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (runsOf === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const scenarios = runsOf;
  const options = scenarios[0] as BenchOptions;

  const controller = new AbortController();
  const interrupt = () => {
    // A second Ctrl-C does not wait for the clean-up; the 'exit' hooks still remove what they can.
    if (controller.signal.aborted) process.exit(130);
    controller.abort(new Error('interrupted'));
  };
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  try {
    const reports: BenchReport[] = [];
    for (const scenario of scenarios) reports.push(await runBench(scenario, controller.signal, log));
    // With --json and both scenarios: the io report, the transfer report as its field.
    const [report, ...more] = reports as [BenchReport, ...BenchReport[]];
    if (options.json)
      process.stdout.write(
        `${JSON.stringify(more[0] ? { ...report, transfer: more[0] } : report, null, 2)}\n`,
      );
    else process.stdout.write(reports.map(formatReport).join('\n'));
    return 0;
  } catch (error) {
    const message = controller.signal.aborted ? 'interrupted' : (error as Error).message;
    if (options.json) process.stdout.write(`${JSON.stringify({ error: { message } }, null, 2)}\n`);
    else log(`bench failed: ${message}`);
    return controller.signal.aborted ? 130 : 1;
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  }
}

async function workerMain(jobText: string | undefined): Promise<number> {
  try {
    const sample = await runWorker(JSON.parse(jobText ?? '') as WorkerJob);
    process.stdout.write(`${JSON.stringify(sample)}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    return 1;
  }
}

function parseBenchArgs(argv: string[]): BenchOptions[] | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      size: { type: 'string' },
      runs: { type: 'string', default: '2' },
      hosts: { type: 'string', default: '4' },
      dir: { type: 'string', default: tmpdir() },
      json: { type: 'boolean', default: false },
      only: { type: 'string' },
      scenario: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) {
    throw new Error(`--runs must be a whole number from 1 to 20, not '${values.runs}'.`);
  }
  const hosts = Number(values.hosts);
  if (!Number.isInteger(hosts) || hosts < 1 || hosts > 16) {
    throw new Error(`--hosts must be a whole number from 1 to 16, not '${values.hosts}'.`);
  }
  const only = values.only ?? values.scenario;
  if (only !== undefined && !isScenario(only)) {
    throw new Error(`--only must be io, bundle or transfer, not '${only}'.`);
  }
  const scenarios: Scenario[] = only === undefined ? ['io', 'transfer'] : [only];
  return scenarios.map((scenario) => ({
    sizeBytes: parseSize(values.size ?? DEFAULT_SIZES[scenario]),
    runs,
    dir: values.dir,
    json: values.json,
    scenario,
    hosts,
  }));
}

function isScenario(value: string): value is Scenario {
  return value in DEFAULT_SIZES;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 2 ** 10,
  kib: 2 ** 10,
  m: 2 ** 20,
  mib: 2 ** 20,
  g: 2 ** 30,
  gib: 2 ** 30,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
};

function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const scale = match ? SIZE_UNITS[(match[2] ?? '').toLowerCase()] : undefined;
  const bytes = match && scale !== undefined ? Math.floor(Number(match[1]) * scale) : Number.NaN;
  if (!(bytes > 0)) {
    throw new Error(`--size '${text}' is not a size: write e.g. 1GiB, 512MiB, 2GB or a number of bytes.`);
  }
  return bytes;
}

/** What every group works with. */
interface Bench extends GroupContext {
  options: BenchOptions;
  /** The temp dir; shown as $BENCH in commands. */
  work: string;
  dataDir: string;
  data: string;
  bundleDir: string;
  bundle: string;
  keys: GeneratedKeyPair;
  measureTool(argv: string[], stdinFile?: string): Promise<Sample>;
  measureApertus(job: WorkerJob): Promise<Sample>;
  /** Removes `path` (file or directory), then flushes dirty pages: the set-up before a run. */
  fresh(path: string): () => Promise<void>;
  shown(text: string): string;
}

async function runBench(
  options: BenchOptions,
  signal: AbortSignal,
  log: (line: string) => void,
): Promise<BenchReport> {
  await mkdir(options.dir, { recursive: true });
  const work = await mkdtemp(join(options.dir, 'apertus-bench-'));
  // Backstop for an exit that skips the finally below (a second Ctrl-C).
  const removeWork = () => rmSync(work, { recursive: true, force: true });
  process.on('exit', removeWork);
  let host: DemoHost | undefined;
  try {
    if (options.scenario === 'bundle') {
      log(
        `apertus bench (bundle scenario) in ${work}: ${formatSize(options.sizeBytes)}, ${options.runs} runs each`,
      );
      return await runBundleScenario({ ...options, work, signal, log, writeRandomFile });
    }
    if (options.scenario === 'transfer') {
      log(
        `apertus bench (transfer scenario) in ${work}: ${formatSize(options.sizeBytes)}, ${options.runs} runs each, 1 and ${options.hosts} hosts`,
      );
      return await runTransferScenario({ ...options, work, entry: ENTRY, signal, log, writeRandomFile });
    }
    // First, before anything of ours runs: it samples the load other work puts on the machine.
    const machine = await describeMachine();
    const gnuTime = await findGnuTime();
    log(`apertus bench in ${work}: ${formatSize(options.sizeBytes)}, ${options.runs} runs each`);

    const dataDir = join(work, 'data');
    const data = join(dataDir, DATA_FILE);
    await mkdir(dataDir);
    const generated = performance.now();
    await writeRandomFile(data, options.sizeBytes, signal);
    log(`  data: ${((performance.now() - generated) / 1000).toFixed(2)} s to write ${DATA_FILE}`);
    const bundleDir = join(work, 'bundle');
    const bench: Bench = {
      options,
      runs: options.runs,
      signal,
      log,
      work,
      dataDir,
      data,
      bundleDir,
      bundle: join(bundleDir, bundleFileName(BENCH_BUNDLE.name, BENCH_BUNDLE.version)),
      keys: await generateKeyPair(join(work, 'key', 'bench')),
      measureTool: (argv, stdinFile) =>
        measureCommand(argv, { stdinFile, signal, gnuTime, scratchDir: work }),
      measureApertus: (job) => measureWorker(ENTRY, job, signal),
      fresh: (path) => async () => {
        await rm(path, { recursive: true, force: true });
        await runProcess(['sync'], { signal });
      },
      shown: (text) => text.replaceAll(work, '$BENCH'),
    };

    const writeRows = await measureWrites(bench);
    const bundleBytes = Number(writeRows[0]?.detail.bundleBytes ?? options.sizeBytes);
    const verifyRows = await measureVerifies(bench, bundleBytes);

    const upload: BenchReport['upload'] = {
      demoHost: null,
      apertusCipher: null,
      opensshCipher: null,
      scpProtocol: null,
    };
    const skipped: BenchReport['skipped'] = [];
    const notes: string[] = [];
    let uploadRows: BenchRow[] = [];
    const uid = process.getuid?.() ?? -1;
    if (uid !== 0) {
      skipped.push({
        group: 'upload',
        reason: `not running as root (uid ${uid}): the demo host is a network namespace, which needs root. Run it as root: sudo npm run bench`,
      });
    } else {
      try {
        host = await createDemoHost({ workDir: join(work, 'host'), mode: 'netns', signal });
        uploadRows = await measureUploads(bench, host, upload, notes);
      } catch (error) {
        if (signal.aborted) throw error;
        skipped.push({ group: 'upload', reason: (error as Error).message.split('\n')[0] ?? String(error) });
      }
    }

    const idle: Sample[] = [];
    for (let run = 0; run < options.runs; run++) {
      const sample = await measureWorker(ENTRY, { op: 'idle' }, signal).catch(() => undefined);
      if (sample) idle.push(sample);
    }
    const results = [...writeRows, ...verifyRows, ...uploadRows];
    return {
      sizeBytes: options.sizeBytes,
      runs: options.runs,
      statistic: statisticOf(options.runs),
      machine,
      results,
      skipped,
      upload,
      notes: [...notes, ...explain(results, { options, machine, gnuTime, idle, upload })],
    };
  } finally {
    await host?.teardown();
    await rm(work, { recursive: true, force: true });
    process.off('exit', removeWork);
  }
}

/** A signed bundle of the data file against a plain tar of it, with and without fsync. */
async function measureWrites(bench: Bench): Promise<BenchRow[]> {
  const { options, data, dataDir, bundleDir, bundle, keys, shown } = bench;
  const tarDir = join(bench.work, 'tar');
  const tarFile = join(tarDir, 'data.tar');
  await mkdir(tarDir);
  const tarArgv = ['tar', '-cf', tarFile, '-C', dataDir, DATA_FILE];
  const tarSyncScript = `tar -cf "$1" -C "$2" ${DATA_FILE} && sync "$1"`;
  const rows = await runGroup(
    'write',
    [
      {
        tool: 'apertus',
        operation: 'writeBundle (hash, copy, sign, fsync)',
        command: 'writeBundle(plan with one file layer, { outDir, secretKey })',
        bytes: options.sizeBytes,
        prepare: bench.fresh(bundle),
        run: () =>
          bench.measureApertus({
            op: 'write',
            source: data,
            outDir: bundleDir,
            secretKeyPath: keys.secretKeyPath,
          }),
      },
      {
        tool: 'GNU tar',
        operation: 'tar -cf',
        command: shown(tarArgv.join(' ')),
        bytes: options.sizeBytes,
        prepare: bench.fresh(tarFile),
        run: () => bench.measureTool(tarArgv),
      },
      {
        tool: 'GNU tar',
        operation: 'tar -cf && sync FILE (durable, as apertus)',
        command: shown(`sh -c '${tarSyncScript}' sh ${tarFile} ${dataDir}`),
        bytes: options.sizeBytes,
        prepare: bench.fresh(tarFile),
        run: () => bench.measureTool(['sh', '-c', tarSyncScript, 'sh', tarFile, dataDir]),
      },
    ],
    bench,
  );
  await rm(tarDir, { recursive: true, force: true });
  return rows;
}

/** The whole bundle re-hashed and its signature checked, against hashing the tar once. */
function measureVerifies(bench: Bench, bundleBytes: number): Promise<BenchRow[]> {
  const { bundle, keys, shown } = bench;
  return runGroup(
    'verify',
    [
      {
        tool: 'apertus',
        operation: 'verifyBundle (every file + signature)',
        command: 'verifyBundle(bundle, { publicKeyPath })',
        bytes: bundleBytes,
        run: () =>
          bench.measureApertus({ op: 'verify', bundlePath: bundle, publicKeyPath: keys.publicKeyPath }),
      },
      {
        tool: 'sha256sum',
        operation: 'sha256sum BUNDLE.tar',
        command: shown(`sha256sum ${bundle}`),
        bytes: bundleBytes,
        run: () => bench.measureTool(['sha256sum', bundle]),
      },
      {
        tool: 'openssl',
        operation: 'openssl dgst -sha256 BUNDLE.tar',
        command: shown(`openssl dgst -sha256 ${bundle}`),
        bytes: bundleBytes,
        run: () => bench.measureTool(['openssl', 'dgst', '-sha256', bundle]),
      },
    ],
    bench,
  );
}

/**
 * apertus' transfer path against scp and ssh cat, into the demo host, with the same file
 * (the bundle's big blob is the data file's bytes). Fills in `upload` and `notes`.
 */
async function measureUploads(
  bench: Bench,
  host: DemoHost,
  upload: BenchReport['upload'],
  notes: string[],
): Promise<BenchRow[]> {
  const { options, data, shown, signal } = bench;
  if (!host.address || !host.identityFile || !host.knownHostsFile) {
    throw new Error(`the demo host has no sshd (${host.reason})`);
  }
  const { identityFile, knownHostsFile } = host;
  upload.demoHost = host.reason;
  const address = parseHostAddress(host.address);
  const {
    options: sshOptions,
    destination,
    port,
  } = opensshTarget({
    address: host.address,
    identityFile,
    knownHostsFile,
  });
  const transport = await connectSsh({ address, identityFile, knownHostsFile, signal });
  upload.apertusCipher = transport.cipher;
  await transport.close();
  upload.opensshCipher = await opensshCipher([...sshOptions, '-p', port, destination], signal);

  // The host's filesystem is this machine's: bench.fresh empties its files from here.
  const remoteDir = join(host.root, 'upload');
  const hostRoot = join(host.root, 'apertus');
  const scpTarget = join(remoteDir, 'scp.bin');
  const catTarget = join(remoteDir, 'cat.bin');
  await mkdir(remoteDir, { recursive: true });

  const connectArgv = ['ssh', ...sshOptions, '-p', port, destination, 'true'];
  const scpArgv = (legacy: boolean) => [
    'scp',
    ...(legacy ? ['-O'] : []),
    ...sshOptions,
    ...['-P', port, data, `${destination}:${scpTarget}`],
  ];
  const catArgv = (cipher?: string) => [
    'ssh',
    ...sshOptions,
    ...(cipher ? ['-c', cipher] : []),
    ...['-p', port, destination, `cat > ${quoteArg(catTarget)}`],
  ];
  const catCommand = (argv: string[]) =>
    shown(`${argv.slice(0, -1).join(' ')} ${quoteArg(argv.at(-1) ?? '')} < ${data}`);

  // scp speaks SFTP by default; the legacy protocol (-O) only when that fails.
  let sftpFailure: string | undefined;
  const runScp = async (): Promise<Sample> => {
    if (upload.scpProtocol === 'legacy-scp') return bench.measureTool(scpArgv(true));
    try {
      const sample = await bench.measureTool(scpArgv(false));
      upload.scpProtocol = 'sftp';
      return sample;
    } catch (error) {
      if (upload.scpProtocol !== null || signal.aborted) throw error;
      sftpFailure = (error as Error).message.split('\n')[0];
      const sample = await bench.measureTool(scpArgv(true));
      upload.scpProtocol = 'legacy-scp';
      return sample;
    }
  };

  const measurements: Measurement[] = [
    {
      tool: 'OpenSSH',
      operation: 'ssh host true (connect + one command, no data)',
      command: shown(connectArgv.join(' ')),
      bytes: 0,
      run: () => bench.measureTool(connectArgv),
    },
    {
      tool: 'apertus',
      operation: `connectSsh + transferBlobs (${upload.apertusCipher}, verified on host)`,
      command: 'connectSsh(host) + transferBlobs(the largest blob of the bundle)',
      bytes: options.sizeBytes,
      prepare: bench.fresh(hostRoot),
      run: () =>
        bench.measureApertus({
          op: 'transfer',
          bundlePath: bench.bundle,
          address: host.address ?? '',
          identityFile,
          knownHostsFile,
          hostRoot,
        }),
      parts: (best) => [
        { operation: 'of which connect (ssh2)', seconds: Number(best.detail.connectSeconds), bytes: 0 },
        {
          operation: `of which transferBlobs (read+hash, send, host hash (${best.detail.hashTool})+write, mv)`,
          seconds: Number(best.detail.transferSeconds),
          bytes: options.sizeBytes,
        },
      ],
    },
    {
      tool: 'OpenSSH',
      operation: `scp (${upload.opensshCipher})`,
      command: shown(scpArgv(false).join(' ')),
      bytes: options.sizeBytes,
      prepare: bench.fresh(scpTarget),
      run: runScp,
    },
    {
      tool: 'OpenSSH',
      operation: `ssh 'cat > f' < file (${upload.opensshCipher})`,
      command: catCommand(catArgv()),
      bytes: options.sizeBytes,
      prepare: bench.fresh(catTarget),
      run: () => bench.measureTool(catArgv(), data),
    },
  ];
  if (upload.apertusCipher !== upload.opensshCipher) {
    // The closest analogue of apertus' upload: the same command on the same cipher.
    const argv = catArgv(upload.apertusCipher);
    measurements.push({
      tool: 'OpenSSH',
      operation: `ssh -c ${upload.apertusCipher} 'cat > f' < file`,
      command: catCommand(argv),
      bytes: options.sizeBytes,
      prepare: bench.fresh(catTarget),
      run: () => bench.measureTool(argv, data),
    });
  }
  const rows = await runGroup('upload', measurements, bench);
  await rm(remoteDir, { recursive: true, force: true });
  await rm(hostRoot, { recursive: true, force: true });
  if (upload.scpProtocol === 'legacy-scp') {
    for (const row of rows)
      if (row.operation.startsWith('scp ')) row.command = shown(scpArgv(true).join(' '));
    notes.push(`scp over SFTP failed (${sftpFailure}); the scp row used the legacy protocol (scp -O).`);
  }
  return rows;
}

function explain(
  results: BenchRow[],
  facts: {
    options: BenchOptions;
    machine: Machine;
    gnuTime: string | undefined;
    /** Workers that load the modules and do nothing: the RSS floor. */
    idle: Sample[];
    upload: BenchReport['upload'];
  },
): string[] {
  const { machine, upload, idle } = facts;
  const startup = results
    .filter((row) => row.tool === 'apertus' && row.partOf === null && row.processSeconds !== null)
    .map((row) => (row.processSeconds ?? 0) - (row.seconds ?? 0));
  const memory = formatSize(machine.memoryBytes).split(' (')[0];
  const floor = idle.flatMap((sample) =>
    sample.peakRssBytes ? [Math.round(sample.peakRssBytes / 2 ** 20)] : [],
  );
  const notes: string[] = [];
  if (machine.busyCoresBefore !== null && machine.busyCoresBefore >= 0.2) {
    notes.push(
      `Other work kept ${machine.busyCoresBefore} of the ${machine.cores} cores busy just before the start (sampled for 1 s): if it went on, the numbers are slower and noisier than on an idle machine.`,
    );
  }
  notes.push(
    `MB/s is 10^6 bytes per second. apertus rows time the core call inside its own worker process; the Node start-up and module loading around it (${startup.length > 0 ? `${Math.min(...startup).toFixed(2)}-${Math.max(...startup).toFixed(2)} s` : 'n/a'}) is not counted (processSeconds in --json has it). Tool rows time the whole process.`,
    `Peak RSS: apertus rows are the worker's VmHWM from /proc/self/status, not resourceUsage().maxRSS, which on Linux includes the harness the worker was forked from${floor.length > 0 ? `; a worker that loads the same modules and does nothing peaks at ${[...new Set([Math.min(...floor), Math.max(...floor)])].join('-')} MiB` : ''}. Tool rows ${facts.gnuTime ? `are GNU time's %M (${facts.gnuTime}), the largest of the process and the children it waited for` : 'are n/a: /usr/bin/time (GNU time) is not installed'}. CPU s is user + system time of that process.`,
    `${facts.options.sizeBytes * 3 < machine.memoryBytes / 2 ? `The data fits in the page cache (${memory} RAM), so reads come from memory, not disk` : `The data may not fit in the page cache (${memory} RAM): reads may come from disk`}; 'sync' runs before every write and upload. writeBundle fsyncs the bundle before it returns, tar -cf does not: compare it with 'tar -cf && sync FILE'.`,
  );
  if (upload.demoHost !== null) {
    notes.push(
      `Upload target: demo host, ${upload.demoHost}. Client and the host's sshd run on this machine's ${machine.cores} cores, so every upload pays encryption and decryption on the same CPUs; the host side's CPU is in no row.`,
      `Ciphers: ssh2 (apertus) negotiated ${upload.apertusCipher}; OpenSSH's ssh and scp negotiated ${upload.opensshCipher} with their default preferences${upload.scpProtocol ? `; scp used ${upload.scpProtocol === 'sftp' ? 'the SFTP protocol (its default)' : 'the legacy SCP protocol (-O)'}` : ''}.`,
      "transferBlobs is what install does with the blobs a host lacks: one host command receives them all; each is hashed here as it is read and on the host as it arrives (tee into .incoming-<hex> and the hash tool), then chmod and mv into the store when both hashes match; the host probe (install's preflight) is not counted. scp and ssh cat check nothing on the host.",
    );
  }
  return notes;
}

/** Random bytes, fresh for every block, so no compression or deduplication helps anyone. */
async function writeRandomFile(path: string, size: number, signal: AbortSignal): Promise<void> {
  async function* blocks() {
    for (let offset = 0; offset < size; offset += RANDOM_BLOCK) {
      yield randomBytes(Math.min(RANDOM_BLOCK, size - offset));
    }
  }
  await pipeline(Readable.from(blocks()), createWriteStream(path), { signal });
}

process.exitCode = await main(process.argv.slice(2));
