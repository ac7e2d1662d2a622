/**
 * Issue 9, findings 1 and 3, through the command: a bundle whose config was edited and
 * whose SHA256SUMS was written again to match (only the signature could tell) is refused
 * by `apertus install` when the bundle is loaded, naming the field, with exit code 1 and
 * nothing created on the host.
 */
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeBundle } from '../../src/core/bundle/write-bundle.js';
import { makeBundleFixture } from '../helpers/bundle-fixture.js';
import { forgeBundle, type Json, rewriteChecksums } from '../helpers/forge-bundle.js';
import { runCli } from '../helpers/run-cli.js';

describe('apertus install of a forged bundle', () => {
  let work: string;
  let tar: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-forged-'));
    tar = (
      await writeBundle(await makeBundleFixture(path.join(work, 'fixture')), {
        outDir: path.join(work, 'out'),
      })
    ).path;
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it.each<[string, (config: Json) => void, string]>([
    [
      'a service named like a shell command',
      (c) => {
        c.services[0].name = '$(touch /tmp/x)';
      },
      'services.0.name',
    ],
    [
      'version "../victim"',
      (c) => {
        c.version = '../victim';
      },
      'version',
    ],
  ])('refuses %s at load, naming the field, exit 1, host untouched', async (what, change, field) => {
    const bundle = path.join(work, what.replace(/\W+/g, '-'));
    await mkdir(bundle);
    await execa('tar', ['-xf', tar, '-C', bundle]);
    await forgeBundle(bundle, { config: change });
    await rewriteChecksums(bundle);
    const verified = await runCli(['verify', bundle, '--json']);
    const results = JSON.parse(verified.stdout).results as Array<{ status: string; detail: string }>;
    expect(results.filter((r) => r.status !== 'ok' && r.status !== 'unsigned')).toEqual([
      expect.objectContaining({ status: 'invalid', detail: expect.stringContaining(`${field}: `) }),
    ]);

    const root = path.join(work, `${path.basename(bundle)}-root`);
    const installed = await runCli(['install', bundle, '--local', '--root', root, '--json']);
    expect(installed.exitCode).toBe(1);
    const { error } = JSON.parse(installed.stdout);
    expect(error).toMatchObject({ code: 'bundle-invalid', message: expect.stringContaining(`${field}: `) });
    await expect(readdir(root)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
