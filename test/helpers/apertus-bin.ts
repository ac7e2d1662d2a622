/**
 * bin/apertus.js as an operator runs it (the build `npm test` makes first), for e2e tests:
 * to completion, or started and stopped with a real signal mid-way.
 */
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';

const BIN = path.resolve('bin/apertus.js');

export interface BinRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** `env` adds to (or, with undefined values, takes from) the environment the CLI sees. */
export async function apertusBin(
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<BinRun> {
  const result = await execa(process.execPath, [BIN, ...args], {
    reject: false,
    env: { CI: 'true', ...env },
  });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** Starts apertus; the caller sends it a signal and awaits `done`. */
export function startApertusBin(args: string[]): {
  process: ResultPromise;
  done: Promise<BinRun & { signal: string | null }>;
} {
  // No SIGKILL 5 s after a SIGTERM (execa's default): the command takes its time to put the host back.
  const child = execa(process.execPath, [BIN, ...args], {
    reject: false,
    env: { CI: 'true' },
    forceKillAfterDelay: false,
  });
  const done = child.then((r) => ({
    exitCode: r.exitCode ?? -1,
    stdout: String(r.stdout),
    stderr: String(r.stderr),
    signal: r.signal ?? null,
  }));
  return { process: child, done };
}

export function parseJson<T = Record<string, unknown>>(stdout: string): T {
  return JSON.parse(stdout) as T;
}
