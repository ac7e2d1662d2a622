/**
 * Delta bundles end to end: bin/apertus.js bundles demo 0.1.0, then 0.2.0 with one file
 * changed as a delta `--since` the 0.1.0 tar, and installs them over SSH into a real
 * sshd in a network namespace with no route out.
 */
import { cp, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoHost, type DemoHost } from '../../src/core/demo-host/demo-host.js';
import { storedBlobs } from '../helpers/bundle-blobs.js';
import { hostTargetArgs, sshE2eRequirement } from '../helpers/demo-host.js';

const BIN = path.resolve('bin/apertus.js');
const requirement = sshE2eRequirement();

async function apertus(args: string[]) {
  const result = await execa(process.execPath, [BIN, ...args], { reject: false, env: { CI: 'true' } });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

function json<T>(stdout: string): T {
  return JSON.parse(stdout) as T;
}

async function snapshot(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.map((e) => path.join(e.parentPath, e.name)).sort();
}

describe.skipIf(!requirement.ok)(`delta bundle installs over SSH ${requirement.why}`, () => {
  let work: string;
  let host: DemoHost;
  let publicKey: string;
  let basePath: string;
  let deltaPath: string;
  let target: string[];

  /** The demo recipe with a notes file in its model directory, at `version`. */
  async function recipe(name: string, version: string, notes: string): Promise<string> {
    const dir = path.join(work, name);
    await cp('bundles/demo', dir, { recursive: true });
    const yaml = await readFile(path.join(dir, 'apertus.yaml'), 'utf8');
    await writeFile(path.join(dir, 'apertus.yaml'), yaml.replace('version: 0.1.0', `version: ${version}`));
    await writeFile(path.join(dir, 'model', 'NOTES.md'), notes);
    return dir;
  }

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-e2e-delta-'));
    host = await createDemoHost({ workDir: path.join(work, 'host'), mode: 'netns' });
    const keys = await apertus(['keys', 'generate', '-o', path.join(work, 'release'), '--json']);
    expect(keys.exitCode, keys.stderr).toBe(0);
    publicKey = json<{ publicKeyPath: string }>(keys.stdout).publicKeyPath;
    const sign = ['--sign', path.join(work, 'release.key'), '--json'];
    const out = path.join(work, 'out');
    const v1 = await apertus(['bundle', await recipe('v1', '0.1.0', 'first notes\n'), '-o', out, ...sign]);
    expect(v1.exitCode, v1.stderr).toBe(0);
    basePath = json<{ path: string }>(v1.stdout).path;
    const v2 = await apertus([
      'bundle',
      await recipe('v2', '0.2.0', 'second notes, longer\n'),
      '-o',
      out,
      '--since',
      basePath,
      ...sign,
    ]);
    expect(v2.exitCode, v2.stderr).toBe(0);
    const written = json<{ path: string; omitted: { blobs: number; bytes: number } }>(v2.stdout);
    deltaPath = written.path;
    expect(path.basename(deltaPath)).toBe('demo-0.2.0-since-0.1.0.tar');
    expect(written.omitted.bytes).toBeGreaterThan(273_152); // the model at least
    target = [...hostTargetArgs(host), '--trust-key', publicKey];
  });

  afterAll(async () => {
    await host?.teardown();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('verifies on its own and inspect names its base', async () => {
    const verified = await apertus(['verify', deltaPath, '--key', publicKey, '--json']);
    expect(verified.exitCode, verified.stdout).toBe(0);
    const results = json<{ ok: boolean; signed: boolean; results: Array<{ status: string }> }>(
      verified.stdout,
    );
    expect(results).toMatchObject({ ok: true, signed: true });
    expect(results.results.filter((r) => r.status === 'in-base').length).toBeGreaterThan(0);
    const inspected = await apertus(['inspect', deltaPath]);
    expect(inspected.exitCode).toBe(0);
    expect(inspected.stdout).toMatch(
      /delta\s+since demo 0\.1\.0 \(sha256:[0-9a-f]{64}\); leaves out \d+ blobs/,
    );
  });

  it('on a host without 0.1.0, refuses before sending anything, naming the base to install first', async () => {
    const root = `${host.root}-fresh`;
    const args = target.map((a) => (a === host.root ? root : a));
    const before = await snapshot(root);
    const refused = await apertus(['install', deltaPath, ...args, '--json']);
    expect(refused.exitCode).toBe(1);
    const error = json<{ error: { code: string; message: string; hint: string } }>(refused.stdout).error;
    expect(error.code).toBe('delta-base-missing');
    expect(error.message).toContain('demo 0.2.0 is a delta bundle cut against demo 0.1.0');
    expect(error.hint).toContain('Install demo 0.1.0 (demo-0.1.0.tar) on this host first');
    expect(error.hint).toContain('demo-0.2.0.tar');
    expect(await snapshot(root)).toEqual(before);
  });

  it('installs onto a host with 0.1.0, uploading only the changed file and the new metadata', async () => {
    const first = await apertus(['install', basePath, ...target, '--json']);
    expect(first.exitCode, first.stdout).toBe(0);

    const base = await storedBlobs(basePath);
    const delta = await storedBlobs(deltaPath);
    const fresh = [...delta].filter(([digest]) => !base.has(digest));
    const notes = delta.get(
      `sha256:${(await execa('sha256sum', [path.join(work, 'v2', 'model', 'NOTES.md')])).stdout.slice(0, 64)}`,
    );
    expect(notes).toBe('second notes, longer\n'.length);

    const second = await apertus(['install', deltaPath, ...target, '--json']);
    expect(second.exitCode, second.stdout).toBe(0);
    const report = json<{
      ok: boolean;
      transfer: { bytesUploaded: number; blobsUploaded: number };
      checks: Array<{ id: string; status: string }>;
    }>(second.stdout);
    expect(report.ok).toBe(true);
    expect(report.transfer).toMatchObject({
      blobsUploaded: fresh.length,
      bytesUploaded: fresh.reduce((sum, [, size]) => sum + size, 0),
    });
    // Far less than the model the delta leaves out: the notes, the manifests, the config and
    // the SBOM (which lists the bundled CLI's packages, so it is the largest of them).
    const model = await stat('bundles/demo/model/tiny-llama.gguf');
    expect(report.transfer.bytesUploaded).toBeLessThan(model.size);
    expect(report.checks.length).toBeGreaterThan(0);
    expect(report.checks.filter((c) => c.status !== 'ok')).toEqual([]);
    expect(await readlink(path.join(host.root, 'current'))).toBe('releases/demo/0.2.0');
    expect(await readFile(path.join(host.root, 'releases/demo/0.2.0/model/NOTES.md'), 'utf8')).toBe(
      'second notes, longer\n',
    );
  });
});
