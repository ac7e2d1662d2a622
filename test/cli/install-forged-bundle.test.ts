/**
 * Issue 9, findings 1 and 3, through the command: a bundle whose config was edited and
 * whose SHA256SUMS was written again to match (only the signature could tell) is refused
 * by `apertus install` when the bundle is loaded, naming the field, with exit code 1 and
 * nothing created on the host. Issue 12: an adapter whose base model is missing or
 * different is refused by bundle and install alike, exit 2, naming both.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeBundle } from '../../src/core/bundle/write-bundle.js';
import { sha256Digest } from '../../src/core/layout/manifests.js';
import { fixtureBytes, makeBundleFixture } from '../helpers/bundle-fixture.js';
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

describe('an adapter whose base model is missing or different', () => {
  let work: string;
  let tar: string;
  /** What the fixture's model holds: weights.bin, whose digest the adapter pins. */
  const weights = sha256Digest(fixtureBytes('weights', 300 * 1024 + 17));

  /** The fixture plan with a LoRA adapter of its model, pinned by `digest`. */
  async function planWithAdapter(digest: string) {
    const plan = await makeBundleFixture(path.join(work, 'fixture'));
    const lora = path.join(work, 'fixture', 'lora.gguf');
    await writeFile(lora, fixtureBytes('lora', 2048));
    plan.components.splice(1, 0, {
      name: 'lora',
      kind: 'adapter',
      provenance: { source: 'file:adapter' },
      base: { component: 'model', digest },
      layers: [{ type: 'file', source: lora, title: 'lora.gguf' }],
    });
    return plan;
  }

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-forged-adapter-'));
    tar = (await writeBundle(await planWithAdapter(weights), { outDir: path.join(work, 'out') })).path;
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('bundle refuses a base none of whose weights has the pinned digest, naming both, and writes nothing', async () => {
    const other = `sha256:${'e'.repeat(64)}`;
    const out = path.join(work, 'refused');
    await expect(writeBundle(await planWithAdapter(other), { outDir: out })).rejects.toMatchObject({
      code: 'adapter-base-mismatch',
      kind: 'user',
      message: `Adapter lora is bound to base model model at weights ${other}, but the recipe's model differs: none of its weights files is ${other} (it has ${weights}).`,
    });
    expect(await readdir(out)).toEqual([]);
  });

  it.each<[string, (config: Json) => void, string, RegExp]>([
    [
      'another base digest',
      (c) => {
        c.components[1].base.digest = `sha256:${'d'.repeat(64)}`;
      },
      'adapter-base-mismatch',
      /^Adapter lora is bound to base model model at weights sha256:d{64}, but the bundle's model differs: none of its weights files is sha256:d{64}/,
    ],
    [
      'a base that is no model',
      (c) => {
        c.components[1].base.component = 'runtime';
      },
      'adapter-base-missing',
      /^Adapter lora is bound to base model runtime \(weights sha256:[0-9a-f]{64}\), but the bundle has no model component runtime \(it is of kind runtime\); its models: model\.$/,
    ],
  ])('install refuses %s, exit 2, host untouched', async (what, change, code, message) => {
    const bundle = path.join(work, what.replace(/\W+/g, '-'));
    await mkdir(bundle);
    await execa('tar', ['-xf', tar, '-C', bundle]);
    await forgeBundle(bundle, { config: change });
    await rewriteChecksums(bundle);
    const root = path.join(work, `${path.basename(bundle)}-root`);
    const installed = await runCli(['install', bundle, '--local', '--root', root, '--json']);
    expect(installed.exitCode, installed.stdout).toBe(2);
    const { error } = JSON.parse(installed.stdout);
    expect(error.code).toBe(code);
    expect(error.message).toMatch(message);
    await expect(readdir(root)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
