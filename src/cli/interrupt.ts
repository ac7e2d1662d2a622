import type { CliIO } from './io.js';

/**
 * The command was stopped with Ctrl-C (or the caller's signal): what it left is safe and
 * the next run picks it up. src/cli/main.ts maps it to exit code 130, as shells do for SIGINT.
 */
export class CommandInterrupted extends Error {
  readonly hint: string;
  constructor(hint: string) {
    super('Interrupted.');
    this.name = 'CommandInterrupted';
    this.hint = hint;
  }
}

/**
 * Runs `operation` with a signal that Ctrl-C aborts, and turns the abort into a
 * CommandInterrupted that says what rerunning does. The SIGINT listener is there only while
 * the operation runs, and only once: a second Ctrl-C ends the process the default way.
 * In-process callers (tests) pass their own `io.signal` instead.
 */
export async function runInterruptible<T>(
  io: CliIO,
  resumeHint: string,
  operation: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  const onOuterAbort = () => controller.abort(io.signal?.reason);
  const onSigint = () => controller.abort(new CommandInterrupted(resumeHint));
  if (io.signal) {
    if (io.signal.aborted) onOuterAbort();
    else io.signal.addEventListener('abort', onOuterAbort, { once: true });
  } else {
    process.once('SIGINT', onSigint);
  }
  try {
    return await operation(controller.signal);
  } catch (error) {
    if (controller.signal.aborted) throw new CommandInterrupted(resumeHint);
    throw error;
  } finally {
    io.signal?.removeEventListener('abort', onOuterAbort);
    process.removeListener('SIGINT', onSigint);
  }
}
