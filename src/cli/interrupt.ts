import { isApertusError } from '../core/errors.js';
import type { CliIO } from './io.js';

/**
 * The command was stopped with Ctrl-C (or the caller's signal): what it left is safe and
 * the next run picks it up. src/cli/main.ts maps it to exit code 130, as shells do for SIGINT.
 */
export class CommandInterrupted extends Error {
  readonly hint: string;
  /** What the command did about it (put the host back, say), as its own error reported it. */
  readonly details: unknown;
  constructor(hint: string, message = 'Interrupted.', details: unknown = null) {
    super(message);
    this.name = 'CommandInterrupted';
    this.hint = hint;
    this.details = details;
  }
}

/**
 * Runs `operation` with a signal that Ctrl-C (SIGINT) or SIGTERM aborts, and turns the abort
 * into a CommandInterrupted that says what rerunning does (or, when the operation's own
 * error says what it did about the abort, that). The listeners are there only while the
 * operation runs, and only once: a second signal ends the process the default way.
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
    process.once('SIGTERM', onSigint);
  }
  try {
    return await operation(controller.signal);
  } catch (error) {
    if (controller.signal.aborted) {
      if (isApertusError(error) && error.kind === 'operation')
        throw new CommandInterrupted(
          error.hint ?? resumeHint,
          `Interrupted. ${error.message}`,
          error.details ?? null,
        );
      throw new CommandInterrupted(resumeHint);
    }
    throw error;
  } finally {
    io.signal?.removeEventListener('abort', onOuterAbort);
    process.removeListener('SIGINT', onSigint);
    process.removeListener('SIGTERM', onSigint);
  }
}
