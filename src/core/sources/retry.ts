import { setTimeout as sleep } from 'node:timers/promises';
import { ApertusError } from '../errors.js';

/**
 * An error worth retrying: the remote service or the network failed, not the request.
 * `retryAfterMs` carries a `Retry-After` the server sent. Each source names its own
 * subclass (HubUnavailableError, RegistryUnavailableError) for its messages.
 */
export class SourceUnavailableError extends ApertusError {
  readonly retryAfterMs: number | undefined;
  constructor(code: string, message: string, hint: string, retryAfterMs?: number, cause?: unknown) {
    super(code, message, { kind: 'operation', hint, ...(cause === undefined ? {} : { cause }) });
    this.retryAfterMs = retryAfterMs;
  }
}

/** Backoff for attempt n (1-based) of a retry loop, honouring a server's Retry-After up to a minute. */
export function retryDelayMs(attempt: number, error: unknown): number {
  const asked = error instanceof SourceUnavailableError ? error.retryAfterMs : undefined;
  if (asked !== undefined) return Math.min(asked, 60_000);
  return Math.min(500 * 2 ** (attempt - 1), 8_000);
}

/** Runs `operation`, retrying SourceUnavailableError with backoff; aborts stay aborts. */
export async function withRetries<T>(
  operation: () => Promise<T>,
  signal: AbortSignal | undefined,
  attempts: number,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation();
    } catch (error) {
      signal?.throwIfAborted();
      if (!(error instanceof SourceUnavailableError) || attempt >= attempts) throw error;
      await sleep(retryDelayMs(attempt, error), undefined, signal ? { signal } : {});
    }
  }
}
