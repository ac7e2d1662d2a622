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
  /** From the inventory: the host's gateway TLS files and address (install --tls-cert, --expose-address). */
  gateway?: { tls?: { certPath: string; keyPath: string }; exposeAddress?: string } | undefined;
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

/** One host's outcome of a fleet day-two command (status, rollback). */
export interface FleetHostOutcome<T> {
  host: string;
  address: string;
  ok: boolean;
  /** The single-host command's own result; null when it failed before one. */
  result: T | null;
  error: HostError | null;
}

export interface FleetOutcomeReport<T> {
  ok: boolean;
  hosts: Array<FleetHostOutcome<T>>;
  summary: { hosts: number; ok: number; failed: number };
}

/**
 * Runs a single-host command on every host, `forks` at a time, each failure its host's
 * result. Unlike install there are no batches: status changes nothing, and a rollback is
 * already the way back. `ok` of a result that came back is the command's own verdict.
 */
export async function onEveryHost<T extends { ok: boolean }>(
  hosts: readonly FleetHost[],
  forks: number,
  run: (host: FleetHost) => Promise<T>,
  signal?: AbortSignal,
): Promise<FleetOutcomeReport<T>> {
  const outcomes = await runPool(hosts, forks, async (host): Promise<FleetHostOutcome<T>> => {
    const address = targetAddress(host.target);
    try {
      signal?.throwIfAborted();
      const result = await run(host);
      return { host: host.name, address, ok: result.ok, result, error: null };
    } catch (error) {
      if (signal?.aborted) throw error;
      // A failed rollback carries its report (where the host was left) in the error.
      const details = isApertusError(error) ? (error.details as { report?: T } | undefined) : undefined;
      return {
        host: host.name,
        address,
        ok: false,
        result: details?.report ?? null,
        error: hostError(error),
      };
    }
  });
  const ok = outcomes.filter((o) => o.ok).length;
  return {
    ok: ok === outcomes.length,
    hosts: outcomes,
    summary: { hosts: outcomes.length, ok, failed: outcomes.length - ok },
  };
}
