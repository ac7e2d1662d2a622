/**
 * Delta bundles end to end: bin/apertus.js bundles demo 0.1.0, then 0.2.0 with a second
 * LoRA adapter of the model as a delta `--since` the 0.1.0 tar, and installs them over SSH
 * into a real sshd in a network namespace with no route out: the delta uploads the new
 * adapter's bytes and the release's new metadata, nothing else, and serves the adapter.
 */
import { cp, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoHost, type DemoHost } from '../../src/core/demo-host/demo-host.js';
import { openBundle } from '../../src/core/layout/bundle-reader.js';
import { loadBundle } from '../../src/core/layout/load-bundle.js';
import { sha256Digest } from '../../src/core/layout/manifests.js';
import { generateTinyLora } from '../../src/core/tiny-model/generate.js';
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

  /** Another LoRA of the demo model (another seed): what 0.2.0 adds. */
  const secondAdapter = generateTinyLora({ seed: 2 });
  const SECOND_ID = 'apertus-demo-tiny-lora-2';

  /** The demo recipe at `version`; with `adapter`, serving a second LoRA adapter of its model. */
  async function recipe(name: string, version: string, adapter: boolean): Promise<string> {
    const dir = path.join(work, name);
    await cp('bundles/demo', dir, { recursive: true });
    let yaml = (await readFile(path.join(dir, 'apertus.yaml'), 'utf8')).replace(
      'version: 0.1.0',
      `version: ${version}`,
    );
    if (adapter) {
      await mkdir(path.join(dir, 'adapter-2'));
      await writeFile(path.join(dir, 'adapter-2', 'tiny-lora-2.gguf'), secondAdapter);
      const weights = sha256Digest(await readFile(path.join(dir, 'model', 'tiny-llama.gguf')));
      yaml = yaml
        .replace(
          '\nservices:\n',
          [
            '',
            '  - name: tiny-lora-2',
            '    kind: adapter',
            '    source: file:adapter-2',
            '    base:',
            '      component: model',
            `      digest: ${weights}`,
            'services:',
            '',
          ].join('\n'),
        )
        .replace(
          '        modelId: apertus-demo-tiny-lora\n',
          `        modelId: apertus-demo-tiny-lora\n      - adapter: tiny-lora-2/tiny-lora-2.gguf\n        modelId: ${SECOND_ID}\n`,
        );
      expect(yaml).toContain(SECOND_ID);
    }
    await writeFile(path.join(dir, 'apertus.yaml'), yaml);
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
    const v1 = await apertus(['bundle', await recipe('v1', '0.1.0', false), '-o', out, ...sign]);
    expect(v1.exitCode, v1.stderr).toBe(0);
    basePath = json<{ path: string }>(v1.stdout).path;
    const v2 = await apertus([
      'bundle',
      await recipe('v2', '0.2.0', true),
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
    expect(written.omitted.bytes).toBeGreaterThan(273_152 + 44_000); // the model and first adapter at least
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

  it("installs onto a host with 0.1.0, uploading only the new adapter's bytes and the new metadata, and serves it", async () => {
    const first = await apertus(['install', basePath, ...target, '--json']);
    expect(first.exitCode, first.stdout).toBe(0);

    const base = await storedBlobs(basePath);
    const delta = await storedBlobs(deltaPath);
    const fresh = [...delta].filter(([digest]) => !base.has(digest));
    const adapterDigest = `sha256:${(await execa('sha256sum', [path.join(work, 'v2', 'adapter-2', 'tiny-lora-2.gguf')])).stdout.slice(0, 64)}`;
    expect(delta.get(adapterDigest)).toBe(secondAdapter.length);

    const second = await apertus(['install', deltaPath, ...target, '--json']);
    expect(second.exitCode, second.stdout).toBe(0);
    const report = json<{
      ok: boolean;
      transfer: { bytesUploaded: number; blobsUploaded: number };
      checks: Array<{ id: string; status: string; model?: string }>;
    }>(second.stdout);
    expect(report.ok).toBe(true);
    const metadata = fresh.filter(([digest]) => digest !== adapterDigest);
    const metadataBytes = metadata.reduce((sum, [, size]) => sum + size, 0);
    console.log(
      `delta adding a second adapter uploaded ${report.transfer.bytesUploaded} bytes in ${report.transfer.blobsUploaded} blobs: the adapter ${secondAdapter.length} + metadata ${metadataBytes} in ${metadata.length} blobs (${metadata.map(([, size]) => size).join(', ')})`,
    );
    expect(report.transfer).toMatchObject({
      blobsUploaded: fresh.length,
      bytesUploaded: secondAdapter.length + metadataBytes,
    });
    // Of the components' layers, the host gets the new adapter's file and nothing else: no
    // byte of the model, the first adapter or the runtime.
    const reader = await openBundle(deltaPath);
    const layers = await loadBundle(reader)
      .then((bundle) => new Set(bundle.components.flatMap((c) => c.layers.map((l) => l.digest))))
      .finally(() => reader.close());
    expect(fresh.filter(([digest]) => layers.has(digest)).map(([digest]) => digest)).toEqual([adapterDigest]);
    // The rest are documents: the new adapter's manifest and ModelPack config, the model's and
    // first adapter's (their config names the release version), the recipe, the bundle config
    // and manifest, and the SBOM (which lists the runtime's npm closure: the largest of them).
    expect(metadataBytes).toBeLessThan(400_000);
    const omitted = [...base.keys()].filter((digest) => !delta.has(digest));
    expect(omitted).toContain(sha256Digest(await readFile('bundles/demo/model/tiny-llama.gguf')));
    expect(omitted).toContain(sha256Digest(await readFile('bundles/demo/adapter/tiny-lora.gguf')));
    expect(report.checks.length).toBeGreaterThan(0);
    expect(report.checks.filter((c) => c.status !== 'ok')).toEqual([]);
    // Verification chatted with the new adapter under its own id.
    expect(report.checks).toContainEqual(
      expect.objectContaining({ id: 'verify.chat', model: SECOND_ID, status: 'ok' }),
    );
    expect(await readlink(path.join(host.root, 'current'))).toBe('releases/demo/0.2.0');
    expect((await stat(path.join(host.root, 'releases/demo/0.2.0/tiny-lora-2/tiny-lora-2.gguf'))).size).toBe(
      secondAdapter.length,
    );
  });
});
