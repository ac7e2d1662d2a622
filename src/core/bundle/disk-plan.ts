/**
 * Disk needed on the connected side, per filesystem: the bundle where it is written, and
 * the downloads in the cache (at most: files already cached need nothing). Checked before
 * anything is fetched, so a full disk fails in a second, not after hours of downloads.
 */
import { stat, statfs } from 'node:fs/promises';
import path from 'node:path';
import { ApertusError } from '../errors.js';

export interface DiskNeed {
  purpose: 'bundle' | 'downloads';
  path: string;
  bytes: number;
}

export interface DiskPlanEntry {
  /** The directories on this filesystem and what they hold. */
  paths: Array<{ purpose: DiskNeed['purpose']; path: string }>;
  neededBytes: number;
  freeBytes: number;
  /** Enough room for the bundle itself (downloads may be cached already, so they only warn). */
  ok: boolean;
}

export async function planDisk(needs: readonly DiskNeed[]): Promise<DiskPlanEntry[]> {
  const byDevice = new Map<number, DiskPlanEntry & { bundleBytes: number }>();
  for (const need of needs) {
    const dir = await nearestExisting(path.resolve(need.path));
    const [info, fs] = await Promise.all([stat(dir), statfs(dir)]);
    const entry = byDevice.get(info.dev) ?? {
      paths: [],
      neededBytes: 0,
      freeBytes: fs.bavail * fs.bsize,
      ok: true,
      bundleBytes: 0,
    };
    entry.paths.push({ purpose: need.purpose, path: path.resolve(need.path) });
    entry.neededBytes += need.bytes;
    if (need.purpose === 'bundle') entry.bundleBytes += need.bytes;
    byDevice.set(info.dev, entry);
  }
  return [...byDevice.values()].map(({ bundleBytes, ...entry }) => ({
    ...entry,
    ok: bundleBytes <= entry.freeBytes,
  }));
}

/** Refuses a plan whose bundle does not fit where it is to be written. */
export function assertDiskRoom(plan: readonly DiskPlanEntry[]): void {
  const full = plan.find((entry) => !entry.ok);
  if (full === undefined) return;
  const where = full.paths.map((p) => `${p.path} (${p.purpose})`).join(', ');
  throw new ApertusError(
    'disk-full',
    `The bundle needs ${full.neededBytes} bytes on the filesystem of ${where}, which has ${full.freeBytes} free.`,
    {
      kind: 'operation',
      hint: 'Free space there, or write the bundle elsewhere with -o DIR (and the downloads with --cache-dir DIR); `apertus bundle --dry-run` shows what each filesystem needs.',
      details: { disk: plan },
    },
  );
}

async function nearestExisting(dir: string): Promise<string> {
  let current = dir;
  for (;;) {
    try {
      await stat(current);
      return current;
    } catch {
      const parent = path.dirname(current);
      if (parent === current) return current;
      current = parent;
    }
  }
}
