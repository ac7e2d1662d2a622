/**
 * The apertus side of the benchmark. Each operation runs in a child process of its own
 * (`run.js --worker JOB`), so the peak RSS that process reports is the operation's, not
 * the harness's. The child prints one JSON line, a WorkerSample, and nothing else.
 */
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { type BundleWritePlan, writeBundle } from '../core/bundle/write-bundle.js';
import { connectSsh } from '../core/host/ssh-transport.js';
import { openBundle } from '../core/layout/bundle-reader.js';
import { blobPath, digestFromBlobPath } from '../core/layout/names.js';
import { fleetInstall } from '../core/operations/fleet-install.js';
import { install } from '../core/operations/install.js';
import type { ProgressEvent } from '../core/progress.js';
import { readSecretKey } from '../core/sign/keys.js';
import { transferBlobs } from '../core/target/blob-store.js';
import { hostLayout } from '../core/target/layout.js';
import { assertHostUsable } from '../core/target/preflight.js';
import { runProbe } from '../core/target/probe.js';
import { verifyBundle } from '../core/verify/verify-bundle.js';

export type WorkerJob =
  | { op: 'write'; source: string; outDir: string; secretKeyPath: string }
  | { op: 'verify'; bundlePath: string; publicKeyPath: string }
  | {
      op: 'transfer';
      bundlePath: string;
      address: string;
      identityFile: string;
      knownHostsFile: string;
      /** Install root on the host; emptied by the harness before each run. */
      hostRoot: string;
    }
  /**
   * `install` (one host) or a fleet install (several, all in one batch) of a signed bundle,
   * as the CLI runs them: verify, connect, probe, lock, transfer, stage, switch, record.
   */
  | { op: 'install'; bundlePath: string; trustKeyPath: string; hosts: BenchHost[] }
  /** Loads the same modules and does nothing: the RSS floor of every worker. */
  | { op: 'idle' };

/** A demo host as a worker reaches it; `root` is emptied by the harness before each run. */
export interface BenchHost {
  address: string;
  identityFile: string;
  knownHostsFile: string;
  root: string;
}

export interface WorkerSample {
  /** The operation alone: Node start-up and module loading are outside it. */
  seconds: number;
  cpuSeconds: number;
  /** Peak RSS of this process since it started Node, in bytes (see peakRss). */
  peakRssBytes: number;
  detail: Record<string, string | number | boolean>;
}

export async function runWorker(job: WorkerJob): Promise<WorkerSample> {
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  // Jobs with set-up of their own (reading a key, a host probe) report the time that matters.
  const { seconds: own, ...detail } = await runJob(job);
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  return {
    seconds: typeof own === 'number' ? own : seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    peakRssBytes: await peakRss(),
    detail,
  };
}

/**
 * VmHWM, the high-water mark of this process image's memory. Not resourceUsage().maxRSS:
 * Linux folds the RSS of the process before exec into it, and a child forked from the
 * harness starts as a copy of the harness, so maxRSS would report the harness's size
 * whenever that is larger (a 300 MB parent makes every worker's maxRSS 300 MB).
 */
async function peakRss(): Promise<number> {
  try {
    const kib = /^VmHWM:\s+(\d+) kB$/m.exec(await readFile('/proc/self/status', 'utf8'))?.[1];
    if (kib !== undefined) return Number(kib) * 1024;
  } catch {}
  return process.resourceUsage().maxRSS * 1024;
}

async function runJob(job: WorkerJob): Promise<WorkerSample['detail']> {
  switch (job.op) {
    case 'write':
      return writeJob(job.source, job.outDir, job.secretKeyPath);
    case 'verify': {
      const verification = await verifyBundle(job.bundlePath, { publicKeyPath: job.publicKeyPath });
      const bad = verification.results.filter((r) => r.status !== 'ok');
      return {
        ok: verification.ok,
        signed: verification.signed,
        files: verification.results.length,
        ...(bad.length > 0 ? { problems: bad.map((r) => `${r.subject}: ${r.status}`).join('; ') } : {}),
      };
    }
    case 'transfer':
      return transferJob(job);
    case 'install':
      return installJob(job);
    case 'idle':
      return {};
  }
}

async function writeJob(
  source: string,
  outDir: string,
  secretKeyPath: string,
): Promise<WorkerSample['detail']> {
  // Reading the key is set-up, not bundling; the signature itself is inside the measurement.
  const secretKey = await readSecretKey(secretKeyPath);
  const started = performance.now();
  const written = await writeBundle(benchPlan(source), { outDir, secretKey });
  return {
    seconds: (performance.now() - started) / 1000,
    path: written.path,
    bundleBytes: written.size,
    blobs: written.blobs,
  };
}

/** Name and version of the bundle the write worker makes; they decide its file name. */
export const BENCH_BUNDLE = { name: 'bench', version: '1.0.0' } as const;

/** One model component holding the data file as one file layer; nothing else. */
export function benchPlan(source: string): BundleWritePlan {
  return {
    ...BENCH_BUNDLE,
    description: 'apertus bench: one file layer',
    recipe: { fileName: 'apertus.yaml', bytes: Buffer.from('apiVersion: apertus.dev/v1\nkind: Bundle\n') },
    components: [
      {
        name: 'data',
        kind: 'model',
        provenance: { source: 'apertus bench', license: 'Apache-2.0' },
        layers: [{ type: 'file', source, title: 'data.bin' }],
      },
    ],
    services: [],
    verify: { chat: { prompt: 'hello', maxTokens: 1 }, embeddings: null },
    requirements: {},
  };
}

/**
 * connectSsh + transferBlobs of the largest blob, as install does it: read and hash it here,
 * send it, write it to `.incoming-<hex>` and hash it on the host as it arrives, move it into
 * the store. The probe that picks the host's hash tool is install's preflight and stays
 * outside the measured time.
 */
async function transferJob(job: Extract<WorkerJob, { op: 'transfer' }>): Promise<WorkerSample['detail']> {
  const reader = await openBundle(job.bundlePath);
  try {
    const largest = [...reader.entries].sort((a, b) => b.size - a.size)[0];
    const digest = largest === undefined ? undefined : digestFromBlobPath(largest.path);
    if (largest === undefined || digest === undefined) throw new Error(`${job.bundlePath} holds no blob`);
    const layout = hostLayout(job.hostRoot);

    const started = performance.now();
    const transport = await connectSsh({
      address: job.address,
      identityFile: job.identityFile,
      knownHostsFile: job.knownHostsFile,
    });
    const connected = performance.now();
    try {
      const probeStarted = performance.now();
      const { probe } = await runProbe(transport, { root: layout.root, system: false });
      const facts = assertHostUsable(probe, layout, transport.description);
      const probeSeconds = (performance.now() - probeStarted) / 1000;

      const transferStarted = performance.now();
      const result = await transferBlobs({
        transport,
        layout,
        hashTool: facts.hashTool,
        uploads: [{ digest, size: largest.size, resumeFrom: 0 }],
        openBlob: (blobDigest, start) => reader.createReadStream(blobPath(blobDigest), { start }),
        onProgress: () => {},
      });
      const transferSeconds = (performance.now() - transferStarted) / 1000;
      const connectSeconds = (connected - started) / 1000;
      return {
        seconds: connectSeconds + transferSeconds,
        bytes: result.bytes,
        cipher: transport.cipher,
        hashTool: facts.hashTool,
        connectSeconds,
        probeSeconds,
        transferSeconds,
      };
    } finally {
      await transport.close();
    }
  } finally {
    await reader.close();
  }
}

/**
 * The whole install, timed by its progress events: the bundle's verification (once per run),
 * each host's transfer step, and everything else (connect, probe, lock, stage, switch, record).
 */
async function installJob(job: Extract<WorkerJob, { op: 'install' }>): Promise<WorkerSample['detail']> {
  const started = new Map<string, number>();
  const took = new Map<string, number>();
  const clock = (host: string) => (event: ProgressEvent) => {
    const key = `${host} ${event.step}`;
    if (event.status === 'start') started.set(key, performance.now());
    else if (event.status !== 'info' && started.has(key))
      took.set(key, (performance.now() - (started.get(key) ?? 0)) / 1000);
  };
  const target = (host: BenchHost) => ({
    kind: 'ssh' as const,
    address: host.address,
    identityFile: host.identityFile,
    knownHostsFile: host.knownHostsFile,
    sshConfigFile: 'none',
  });
  const begun = performance.now();
  let bytesUploaded = 0;
  if (job.hosts.length === 1) {
    const [host] = job.hosts as [BenchHost];
    const report = await install({
      bundlePath: job.bundlePath,
      target: target(host),
      root: host.root,
      trustKeyPath: job.trustKeyPath,
      onProgress: clock('host1'),
    });
    if (report.dryRun) throw new Error('install made a dry run');
    bytesUploaded = report.transfer.bytesUploaded;
  } else {
    const report = await fleetInstall({
      bundlePath: job.bundlePath,
      hosts: job.hosts.map((host, i) => ({ name: `host${i + 1}`, target: target(host), root: host.root })),
      serial: [{ percent: 100 }],
      forks: job.hosts.length,
      trustKeyPath: job.trustKeyPath,
      onProgress: clock('fleet'),
      onHostProgress: (name, event) => clock(name)(event),
    });
    if (!report.ok)
      throw new Error(report.hosts.map((h) => `${h.host}: ${h.status} ${h.error?.message ?? ''}`).join('; '));
    for (const host of report.hosts) {
      const result = host.report as { transfer?: { bytesUploaded?: number } } | null;
      bytesUploaded += result?.transfer?.bytesUploaded ?? 0;
    }
  }
  const seconds = (performance.now() - begun) / 1000;
  const of = (step: string) =>
    Math.max(0, ...[...took].filter(([key]) => key.endsWith(` ${step}`)).map(([, s]) => s));
  const verifySeconds = of('verify-bundle');
  const transferSeconds = of('transfer');
  return {
    seconds,
    hosts: job.hosts.length,
    bytesUploaded,
    verifySeconds,
    transferSeconds,
    otherSeconds: seconds - verifySeconds - transferSeconds,
    steps: [...took].map(([key, s]) => `${key} ${s.toFixed(2)}`).join(', '),
  };
}
