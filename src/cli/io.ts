import type { Readable, Writable } from 'node:stream';

/** Everything a command may touch of the outside world; tests pass their own. */
export interface CliIO {
  stdout: Writable;
  stderr: Writable;
  /** Whether stderr is an interactive terminal (live progress is only drawn there). */
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
  /** The terminal to ask on (the become password); unset in tests, which are never asked. */
  stdin?: Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  /** Stops long commands as Ctrl-C would; unset, they listen for SIGINT themselves (cli/interrupt.ts). */
  signal?: AbortSignal;
}

export function processIO(): CliIO {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    // A getter: touching process.stdin creates its stream, which only a prompt needs.
    get stdin() {
      return process.stdin;
    },
    isTTY: Boolean(process.stderr.isTTY),
    env: process.env,
  };
}
