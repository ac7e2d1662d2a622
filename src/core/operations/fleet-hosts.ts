/**
 * What every fleet command shares: the hosts it runs on (an inventory's, after --limit), a
 * bounded pool that runs one host's work at a time per fork, and a host's failure turned
 * into a result instead of an exception, so one unreachable host never stops the others.
 */
import { isApertusError } from '../errors.js';
import type { InstallTarget } from '../target/connect.js';

export interface FleetHost {
  /** The inventory name; reports use it. */
  name: string;
  target: InstallTarget;
  root?: string | undefined;
}

/** A host's failure as a report carries it: our errors by code, anything else as a bug. */
export interface HostError {
  code: string;
  message: string;
  hint: string | null;
}

export function hostError(error: unknown): HostError {
  if (isApertusError(error)) return { code: error.code, message: error.message, hint: error.hint ?? null };
  return { code: 'internal', message: error instanceof Error ? error.message : String(error), hint: null };
}

/** `user@host:port` of an SSH host, `local` otherwise: where the result came from. */
export function targetAddress(target: InstallTarget): string {
  return target.kind === 'ssh' ? target.address : 'local';
}

/** Runs `work` on every item with at most `limit` at once; results in the items' order. */
export async function runPool<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}
