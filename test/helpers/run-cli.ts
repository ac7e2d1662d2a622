import { PassThrough } from 'node:stream';
import { main } from '../../src/cli/main.js';

export interface CliRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** ANSI colours, cursor moves and spinner frames, which a comparison must ignore. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching escape sequences is the point
const ANSI = /\u001b\[[0-9;?]*[A-Za-z]/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

/** Runs the CLI in-process with captured streams, as a TTY or as CI/pipe would see it. */
export async function runCli(
  argv: string[],
  options: { tty?: boolean; env?: NodeJS.ProcessEnv; signal?: AbortSignal } = {},
): Promise<CliRun> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  stderr.on('data', (chunk: Buffer) => {
    err += chunk.toString();
  });
  const tty = options.tty ?? false;
  if (tty) Object.assign(stderr, { isTTY: true, columns: 100, rows: 40 });
  const exitCode = await main(argv, {
    stdout,
    stderr,
    isTTY: tty,
    env: options.env ?? (tty ? { TERM: 'xterm' } : { CI: 'true' }),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return { exitCode, stdout: out, stderr: err };
}
