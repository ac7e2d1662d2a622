/**
 * One error base for everything apertus reports. `kind` decides the exit code in
 * src/cli/main.ts (the only place that maps errors to exit codes):
 * - 'user': bad usage or invalid input; fix the input as the hint says (exit 2).
 * - 'operation': the operation ran and failed: verification failed, host refused (exit 1).
 * Anything that is not an ApertusError is a bug.
 */
export type ErrorKind = 'user' | 'operation';

export interface ApertusErrorOptions {
  hint?: string;
  cause?: unknown;
  kind?: ErrorKind;
  /** Structured detail for --json consumers (e.g. the failed verification results). */
  details?: unknown;
}

export class ApertusError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  readonly kind: ErrorKind;
  readonly details: unknown;

  constructor(code: string, message: string, options: ApertusErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ApertusError';
    this.code = code;
    this.hint = options.hint;
    this.kind = options.kind ?? 'user';
    this.details = options.details;
  }
}

export function isApertusError(error: unknown): error is ApertusError {
  return error instanceof ApertusError;
}
