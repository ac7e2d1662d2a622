import type { Writable } from 'node:stream';

/** Everything a command may touch of the outside world; tests pass their own. */
export interface CliIO {
  stdout: Writable;
  stderr: Writable;
  /** Whether stderr is an interactive terminal (live progress is only drawn there). */
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
  /** Stops long commands as Ctrl-C would; unset, they listen for SIGINT themselves (cli/interrupt.ts). */
  signal?: AbortSignal;
}

export function processIO(): CliIO {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    isTTY: Boolean(process.stderr.isTTY),
    env: process.env,
  };
}
