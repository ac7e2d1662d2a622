/**
 * Disk on the connected side: `bundle --dry-run` says what each filesystem needs, and a
 * bundle that cannot fit where it is to be written is refused before anything is fetched
 * or written (a real 2 MiB tmpfs, so root only).
 */
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/run-cli.js';

const isRoot = process.getuid?.() === 0;

describe('disk needed on the connected side', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-disk-'));
  });
  afterAll(async () => {
    await execa('umount', [path.join(work, 'small')], { reject: false });
    await rm(work, { recursive: true, force: true });
  });

  it('--dry-run gives the bytes each filesystem needs and has free', async () => {
    const run = await runCli(['bundle', 'bundles/demo', '--dry-run', '-o', path.join(work, 'out'), '--json']);
    expect(run.exitCode, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as {
      plan: { totalBytes: number };
      cli: { bytes: number };
      disk: Array<{
        paths: Array<{ purpose: string; path: string }>;
        neededBytes: number;
        freeBytes: number;
        ok: boolean;
      }>;
    };
    const bundleDisk = result.disk.find((d) => d.paths.some((p) => p.purpose === 'bundle'));
    expect(bundleDisk?.paths).toContainEqual({ purpose: 'bundle', path: path.join(work, 'out') });
    expect(bundleDisk?.neededBytes).toBeGreaterThanOrEqual(result.plan.totalBytes + result.cli.bytes);
    expect(bundleDisk?.freeBytes).toBeGreaterThan(0);
    expect(bundleDisk?.ok).toBe(true);
  });

  it.skipIf(!isRoot)('refuses a bundle that does not fit, before writing anything', async () => {
    const small = path.join(work, 'small');
    await mkdir(small);
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', small]);
    const run = await runCli(['bundle', 'bundles/demo', '-o', small, '--json']);
    expect(run.exitCode).toBe(1);
    const error = JSON.parse(run.stdout).error as { code: string; message: string; hint: string };
    expect(error.code).toBe('disk-full');
    expect(error.message).toContain(small);
    expect(error.hint).toContain('-o DIR');
    expect(await readdir(small)).toEqual([]);
  });
});
