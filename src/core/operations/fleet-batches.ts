/**
 * How a fleet run is cut into batches and when it stops, as plain data and pure functions,
 * so the rules are tested without a host. The rules follow Ansible's `serial` and
 * `max_fail_percentage`, which operators already know:
 * - `--serial 1,5` (the default: one canary host, then batches of `--forks`): each item is
 *   a batch size, a count or a percentage of the selected hosts; the last item repeats.
 * - `--max-fail P%`: after each batch, when the failed hosts exceed P% of the selected
 *   hosts, no further batch starts. With the default 0, one failure stops the run.
 */
import { ApertusError } from '../errors.js';

export type SerialItem = { count: number } | { percent: number };

export const DEFAULT_FORKS = 5;

const SERIAL_HINT =
  'Pass --serial as batch sizes: a count (2), a percentage of the hosts (25%), or a comma-separated list (1,25%,50%) whose last item repeats.';

/** `N`, `P%` or a comma-separated list of them; throws a usage error naming the bad item. */
export function parseSerial(text: string): SerialItem[] {
  const items = text.split(',').map((item) => item.trim());
  return items.map((item) => {
    const percent = /^(\d{1,3})%$/.exec(item);
    if (percent) {
      const value = Number(percent[1]);
      if (value < 1 || value > 100)
        throw new ApertusError('usage', `--serial ${JSON.stringify(text)}: ${item} is not within 1%-100%.`, {
          hint: SERIAL_HINT,
        });
      return { percent: value };
    }
    if (/^\d{1,6}$/.test(item) && Number(item) >= 1) return { count: Number(item) };
    throw new ApertusError(
      'usage',
      `--serial ${JSON.stringify(text)}: ${JSON.stringify(item)} is neither a count of at least 1 nor a percentage.`,
      { hint: SERIAL_HINT },
    );
  });
}

/** `--max-fail`: `P%` (or plain `P`), 0-100. */
export function parseMaxFail(text: string): number {
  const match = /^(\d{1,3}(?:\.\d+)?)%?$/.exec(text.trim());
  const value = match ? Number(match[1]) : Number.NaN;
  if (!(value >= 0 && value <= 100))
    throw new ApertusError(
      'usage',
      `--max-fail ${JSON.stringify(text)} is not a percentage from 0% to 100%.`,
      {
        hint: 'Pass --max-fail as the share of hosts that may fail before no further batch starts, e.g. --max-fail 25% (default 0%: the first failure stops the run).',
      },
    );
  return value;
}

/** The default serial: a canary host, then batches of `forks`. */
export function defaultSerial(forks: number): SerialItem[] {
  return [{ count: 1 }, { count: forks }];
}

/** Batch sizes for `hosts` hosts; together they cover every host once. */
export function planBatches(hosts: number, serial: readonly SerialItem[]): number[] {
  if (serial.length === 0) throw new Error('planBatches: empty serial');
  const sizes: number[] = [];
  let left = hosts;
  for (let i = 0; left > 0; i++) {
    const item = serial[Math.min(i, serial.length - 1)] as SerialItem;
    // A percentage rounds down, as Ansible's does, but a batch always holds a host.
    const size = 'count' in item ? item.count : Math.max(1, Math.floor((hosts * item.percent) / 100));
    sizes.push(Math.min(size, left));
    left -= size;
  }
  return sizes;
}

/** Cuts `items` into batches of the planned sizes, keeping their order. */
export function cutBatches<T>(items: readonly T[], sizes: readonly number[]): T[][] {
  const batches: T[][] = [];
  let at = 0;
  for (const size of sizes) {
    batches.push(items.slice(at, at + size));
    at += size;
  }
  return batches;
}

/** Whether the failures so far are over the limit: no further batch may start. */
export function overMaxFail(failed: number, hosts: number, maxFailPercent: number): boolean {
  if (hosts === 0) return false;
  return (failed * 100) / hosts > maxFailPercent;
}
