/**
 * How one run of one operation is timed: external tools under GNU time (for their peak
 * RSS and CPU time), apertus operations in a worker process that reports its own.
 */
import { spawn } from 'node:child_process';
import { access, constants, open, readFile, rm } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { WorkerJob, WorkerSample } from './worker.js';

export interface Sample {
  /** The operation: a tool's whole process; a worker's operation without Node start-up. */
  seconds: number;
  /** User + system CPU time, or null when it could not be measured. */
  cpuSeconds: number | null;
  peakRssBytes: number | null;
  /** The whole process as the harness saw it, Node start-up included for workers. */
  processSeconds: number;
  detail: WorkerSample['detail'];
}

const GNU_TIME = '/usr/bin/time';
const STDERR_TAIL = 2000;

/** GNU time, when installed: `-f` and `-o` are GNU options, BSD's time has neither. */
export async function findGnuTime(): Promise<string | undefined> {
  try {
    await access(GNU_TIME, constants.X_OK);
    const { code } = await runProcess([GNU_TIME, '-f', '%M', '-o', '/dev/null', 'true'], {});
    return code === 0 ? GNU_TIME : undefined;
  } catch {
    return undefined;
  }
}

export interface CommandOptions {
  /** A file fed to the command's stdin, as `< file` would. */
  stdinFile?: string | undefined;
  signal: AbortSignal;
  gnuTime: string | undefined;
  /** Where GNU time writes its report. */
  scratchDir: string;
}

let reports = 0;

export async function measureCommand(argv: readonly string[], options: CommandOptions): Promise<Sample> {
  const report = join(options.scratchDir, `time-${reports++}.txt`);
  const full = options.gnuTime ? [options.gnuTime, '-f', '%M %U %S', '-o', report, ...argv] : [...argv];
  const stdin = options.stdinFile === undefined ? undefined : await open(options.stdinFile, 'r');
  try {
    const started = performance.now();
    const { code, stderr } = await runProcess(full, { stdinFd: stdin?.fd, signal: options.signal });
    const seconds = (performance.now() - started) / 1000;
    if (code !== 0) throw new Error(`${argv.join(' ')} exited with ${code}: ${stderr.trim()}`);
    let cpuSeconds: number | null = null;
    let peakRssBytes: number | null = null;
    if (options.gnuTime) {
      // On failure GNU time writes a "Command exited with non-zero status" line first.
      const last = (await readFile(report, 'utf8')).trim().split('\n').at(-1) ?? '';
      const [kib, user, system] = last.split(/\s+/).map(Number);
      if (kib !== undefined && Number.isFinite(kib)) peakRssBytes = kib * 1024;
      if (user !== undefined && system !== undefined && Number.isFinite(user + system))
        cpuSeconds = user + system;
      await rm(report, { force: true });
    }
    return { seconds, cpuSeconds, peakRssBytes, processSeconds: seconds, detail: {} };
  } finally {
    await stdin?.close();
  }
}

/** Runs `job` in `node <entry> --worker <job>`; the child reports its own time and RSS. */
export async function measureWorker(entry: string, job: WorkerJob, signal: AbortSignal): Promise<Sample> {
  const started = performance.now();
  const { code, stdout, stderr } = await runProcess(
    [process.execPath, entry, '--worker', JSON.stringify(job)],
    { signal, captureStdout: true },
  );
  const processSeconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`the ${job.op} worker exited with ${code}: ${stderr.trim()}`);
  const line = stdout.trim().split('\n').at(-1) ?? '';
  const sample = JSON.parse(line) as WorkerSample;
  return {
    seconds: sample.seconds,
    cpuSeconds: sample.cpuSeconds,
    peakRssBytes: sample.peakRssBytes,
    processSeconds,
    detail: sample.detail,
  };
}

interface ProcessOptions {
  stdinFd?: number | undefined;
  signal?: AbortSignal;
  captureStdout?: boolean;
  /** How much of the end of stderr to keep; default 2000 characters. */
  stderrTail?: number;
}

/** Spawns argv; resolves with its exit code (signals as 128+n) and the tail of its stderr. */
export function runProcess(
  argv: readonly string[],
  options: ProcessOptions,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const [command, ...args] = argv;
    if (command === undefined) {
      reject(new Error('runProcess needs a command'));
      return;
    }
    const child = spawn(command, args, {
      stdio: [options.stdinFd ?? 'ignore', options.captureStdout ? 'pipe' : 'ignore', 'pipe'],
      ...(options.signal ? { signal: options.signal, killSignal: 'SIGKILL' as const } : {}),
    });
    const stdout: Buffer[] = [];
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-(options.stderrTail ?? STDERR_TAIL));
    });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      const exit = code ?? 128 + (signal === null ? 0 : osConstants.signals[signal]);
      resolve({ code: exit, stdout: Buffer.concat(stdout).toString(), stderr });
    });
  });
}
