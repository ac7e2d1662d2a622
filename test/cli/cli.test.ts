import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, stripAnsi } from '../helpers/run-cli.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'apertus-cli-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('usage', () => {
  // --help, its groups and every command's flags: help.test.ts.

  it('exits 2 on an unknown command or option, with JSON when asked', async () => {
    expect((await runCli(['bundel'])).exitCode).toBe(2);
    const run = await runCli(['verify', 'x.tar', '--bogus', '--json']);
    expect(run.exitCode).toBe(2);
    expect(JSON.parse(run.stdout)).toMatchObject({ ok: false, error: { code: 'usage' } });
  });

  it('asks for a target when install has none, and for one when it has two', async () => {
    // A file that exists: the bundle argument is checked before the target is.
    const bundle = path.join(work, 'x.tar');
    await writeFile(bundle, '');
    const none = await runCli(['install', bundle]);
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toContain('hint: Pass --host USER@ADDR[:PORT] (SSH) or --local');
    const both = await runCli(['install', bundle, '--local', '--host', 'root@h', '--json']);
    expect(both.exitCode).toBe(2);
    expect(JSON.parse(both.stdout).error.message).toContain('exclude each other');
  });

  it('says what to do with a bundle that does not exist', async () => {
    const run = await runCli(['verify', path.join(work, 'missing.tar'), '--json']);
    expect(run.exitCode).toBe(2);
    expect(JSON.parse(run.stdout).error).toMatchObject({
      code: 'bundle-not-found',
      hint: expect.any(String),
    });
  });
});

describe('an invalid recipe', () => {
  it('is answered with file, YAML path and line, exit 2, and writes nothing', async () => {
    const dir = path.join(work, 'bad-recipe');
    const demo = await readFile('bundles/demo/apertus.yaml', 'utf8');
    await rm(dir, { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.cp('bundles/demo', dir, { recursive: true }));
    await writeFile(path.join(dir, 'apertus.yaml'), demo.replace('threads: 1', 'threads: many'));
    const line = demo.split('\n').findIndex((l) => l.includes('threads: 1')) + 1;
    const out = path.join(work, 'bad-out');

    const human = await runCli(['bundle', dir, '-o', out]);
    expect(human.exitCode).toBe(2);
    expect(stripAnsi(human.stderr)).toContain(
      `${path.join(dir, 'apertus.yaml')}:${line}:14 services[0].threads:`,
    );
    expect(human.stdout).toBe('');
    // Plain progress names the failed step once: the error follows on its own line.
    const progress = stripAnsi(human.stderr);
    expect(progress).toMatch(/^✖ Resolve recipe$/m);
    expect(progress).not.toContain('[FAILED');

    const json = await runCli(['bundle', dir, '-o', out, '--json']);
    expect(json.exitCode).toBe(2);
    const error = JSON.parse(json.stdout).error;
    expect(error.code).toBe('recipe-invalid');
    expect(error.details.problems).toEqual([expect.objectContaining({ path: 'services[0].threads', line })]);
    await expect(readFile(out)).rejects.toThrow();
  });
});

describe('plain progress (CI, pipes)', () => {
  it('shows byte counts as a person reads them, and a step not run once', async () => {
    const run = await runCli(['bundle', 'bundles/demo', '-o', path.join(work, 'plain-out'), '--dry-run']);
    expect(run.exitCode, run.stderr).toBe(0);
    const progress = stripAnsi(run.stderr);
    expect(progress).toMatch(/^✔ Resolve recipe: 3 components, \d+(\.\d+)? (kB|MB|GB)$/m);
    expect(progress).toMatch(/^↓ Fetch sources: not run$/m);
    expect(progress).not.toMatch(/\d{4,} bytes|\[SKIPPED/);
  });
});

describe('bundle, verify and inspect in-process', () => {
  it('plans with --dry-run, writes, verifies with the key and inspects', async () => {
    const keys = await runCli(['keys', 'generate', '-o', path.join(work, 'k'), '--json']);
    expect(keys.exitCode).toBe(0);
    const pair = JSON.parse(keys.stdout);
    expect(pair).toMatchObject({ keyId: expect.stringMatching(/^[0-9A-F]{16}$/) });

    const plan = await runCli([
      'bundle',
      'bundles/demo',
      '-o',
      path.join(work, 'out'),
      '--dry-run',
      '--json',
    ]);
    expect(plan.exitCode).toBe(0);
    const planned = JSON.parse(plan.stdout);
    expect(planned.dryRun).toBe(true);
    expect(planned.plan.components.map((c: { name: string }) => c.name)).toEqual([
      'model',
      'tiny-lora',
      'runtime',
    ]);

    const written = await runCli([
      'bundle',
      'bundles/demo',
      '-o',
      path.join(work, 'out'),
      '--sign',
      pair.secretKeyPath,
      '--json',
    ]);
    expect(written.exitCode, written.stdout).toBe(0);
    const bundle = JSON.parse(written.stdout);
    expect(bundle).toMatchObject({
      dryRun: false,
      signed: true,
      manifestDigest: expect.stringMatching(/^sha256:/),
    });

    const verified = await runCli(['verify', bundle.path, '--key', pair.publicKeyPath, '--json']);
    expect(verified.exitCode).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true, signed: true, keyId: pair.keyId });

    const inspected = await runCli(['inspect', bundle.path, '--json']);
    expect(inspected.exitCode).toBe(0);
    expect(JSON.parse(inspected.stdout)).toMatchObject({
      name: 'demo',
      version: '0.1.0',
      signed: true,
      services: [
        expect.objectContaining({ name: 'llm', runtime: 'llamacpp', port: 18080 }),
        expect.objectContaining({
          name: 'rag',
          runtime: 'rag',
          port: 18090,
          runtimeUrl: 'http://127.0.0.1:18080',
        }),
      ],
    });

    // A dry run plans against the real target and changes nothing there.
    const root = path.join(work, 'host-root');
    const dry = await runCli([
      'install',
      bundle.path,
      '--local',
      '--root',
      root,
      '--trust-key',
      pair.publicKeyPath,
      '--dry-run',
      '--json',
    ]);
    expect(dry.exitCode, dry.stdout).toBe(0);
    const dryPlan = JSON.parse(dry.stdout);
    expect(dryPlan).toMatchObject({ dryRun: true, host: { hashTool: expect.any(String) } });
    expect(dryPlan.plan.uploads).toHaveLength(dryPlan.plan.blobs.total);
    expect(dryPlan.plan.uploadBytes).toBe(dryPlan.plan.blobs.totalBytes);
    await expect(readFile(root)).rejects.toMatchObject({ code: 'ENOENT' });

    // Without --json: results on stdout, progress on stderr as plain lines (CI).
    const plain = await runCli(['verify', bundle.path, '--key', pair.publicKeyPath]);
    expect(plain.exitCode).toBe(0);
    expect(plain.stdout).toMatch(/^ok: \d+ items verified, signature ok$/m);
    expect(stripAnsi(plain.stderr)).toContain('Verify bundle');

    // On a TTY, listr2 draws the steps on stderr; stdout still holds only the result.
    const tty = await runCli(['verify', bundle.path, '--key', pair.publicKeyPath], { tty: true });
    expect(tty.exitCode).toBe(0);
    expect(stripAnsi(tty.stderr)).toContain('Verify bundle');
    expect(tty.stdout).toMatch(/^ok: /m);
  });
});
