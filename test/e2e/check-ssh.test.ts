/**
 * `checkHost` over real SSH against a demo host (sshd in a network namespace with no
 * route out). The host has no GPU: the report says so and still checks disk against the
 * install plan, ports, OS and the CPU model's memory.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundle } from '../../src/core/bundle/bundle.js';
import type { CheckResult } from '../../src/core/check/check-result.js';
import { connectDemoHost, createDemoHost, type DemoHost } from '../../src/core/demo-host/demo-host.js';
import type { Transport } from '../../src/core/host/transport.js';
import { openBundle } from '../../src/core/layout/bundle-reader.js';
import { checkHost, checkHosts } from '../../src/core/operations/check.js';
import { type CheckSubject, loadCheckSubject } from '../../src/core/operations/check-subject.js';
import { generateTinyModel } from '../../src/core/tiny-model/generate.js';
import { sshE2eRequirement } from '../helpers/demo-host.js';

const requirement = sshE2eRequirement();
if (!requirement.ok) console.warn(`Skipping test/e2e/check-ssh.test.ts: ${requirement.why}.`);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function only(results: CheckResult[], id: CheckResult['id']): CheckResult {
  const found = results.filter((r) => r.id === id);
  expect(found, `${id} in ${results.map((r) => r.id).join(', ')}`).toHaveLength(1);
  return found[0] as CheckResult;
}

describe.skipIf(!requirement.ok)(`apertus check over SSH against a GPU-less host ${requirement.why}`, () => {
  let work: string;
  let host: DemoHost;
  let transport: Transport;
  let port: number;
  let bundlePath: string;
  let subject: CheckSubject;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-check-e2e-'));
    host = await createDemoHost({ workDir: path.join(work, 'host'), mode: 'netns' });
    transport = await connectDemoHost(host);
    port = await freePort();
    const recipe = path.join(work, 'recipe');
    await mkdir(path.join(recipe, 'model'), { recursive: true });
    await writeFile(path.join(recipe, 'model', 'tiny-llama.gguf'), generateTinyModel());
    await writeFile(
      path.join(recipe, 'apertus.yaml'),
      [
        'apiVersion: apertus.dev/v1',
        'kind: Bundle',
        'metadata: { name: check-demo, version: 0.1.0 }',
        'components:',
        '  - { name: model, kind: model, source: "file:model" }',
        'services:',
        `  - { name: llm, runtime: llamacpp, model: model/tiny-llama.gguf, modelId: tiny, port: ${port}, threads: 1, contextSize: 256 }`,
      ].join('\n'),
    );
    const written = await bundle({ recipePath: recipe, outDir: path.join(work, 'out') });
    if (written.dryRun) throw new Error('dry run');
    bundlePath = written.path;
    subject = (await loadCheckSubject({ bundle: bundlePath })) as CheckSubject;
  });

  afterAll(async () => {
    await transport?.close();
    await host?.teardown();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('says there is no GPU, and still checks OS, disk, ports and memory', async () => {
    const report = await checkHost(transport, { subject, root: host.root });
    expect(report.transport).toBe(`ssh ${host.address}`);
    const { results } = report;

    const gpu = only(results, 'gpu');
    expect(gpu.status).toBe('ok');
    expect(gpu.detail).toMatch(/^no NVIDIA driver: nvidia-smi is not installed/);
    expect(gpu.detail).toContain("not needed: the bundle's models run on CPU (llamacpp)");
    expect(report.facts?.gpu.state).toBe('no-nvidia-smi');

    expect(only(results, 'os')).toMatchObject({ status: 'ok' });
    expect(only(results, 'os').detail).toMatch(/Linux/);
    expect(only(results, 'arch').status).toBe('ok');
    expect(only(results, 'libc').status).toBe('ok');
    expect(only(results, 'clock').status).toBe('ok');
    expect(only(results, 'install-root').status).toBe('ok');

    const disk = only(results, 'disk');
    expect(disk.status).toBe('ok');
    expect(disk.detail).toMatch(
      new RegExp(
        `for ${host.root}; the install writes .* there \\(\\d+ of \\d+ blobs to upload \\(0 already on the host\\)\\)`,
      ),
    );

    expect(only(results, 'ports')).toMatchObject({
      status: 'ok',
      subject: 'llm',
      detail: `port ${port} (llm) is free`,
    });
    expect(only(results, 'memory').status).toBe('ok');
    expect(only(results, 'container-runtime').detail).toMatch(/^not needed/);
    expect(report.status).not.toBe('fail');
  });

  it('counts only the blobs the host lacks, as the install planner does', async () => {
    const reader = await openBundle(bundlePath);
    const blob = reader.entries
      .filter((e) => e.path.startsWith('blobs/sha256/'))
      .sort((a, b) => b.size - a.size)[0];
    if (!blob) throw new Error('no blob');
    const bytes = await reader.readBytes(blob.path, { maxBytes: 1 << 30 });
    await reader.close();
    const store = path.join(host.root, 'blobs', 'sha256');
    await mkdir(store, { recursive: true });
    await writeFile(path.join(store, path.basename(blob.path)), bytes);

    const before = subject.disk?.kind === 'bundle' ? subject.disk.plan.blobs : new Map();
    const report = await checkHost(transport, { subject, root: host.root });
    const disk = only(report.results, 'disk');
    expect(disk.detail).toContain(
      `${before.size - 1} of ${before.size} blobs to upload (1 already on the host)`,
    );
    expect(report.facts?.root.blobs).toBe(1);
    await rm(path.join(host.root, 'blobs'), { recursive: true, force: true });
  });

  it('fails a port something on the host already listens on', async () => {
    const listener = host.spawnOnHost([
      process.execPath,
      '-e',
      `require('node:net').createServer().listen(${port}, '0.0.0.0', () => console.log('listening'))`,
    ]);
    try {
      await new Promise<void>((resolve, reject) => {
        listener.stdout?.once('data', () => resolve());
        listener.once('exit', (code) => reject(new Error(`listener exited ${code}`)));
      });
      const report = await checkHost(transport, { subject, root: host.root });
      expect(only(report.results, 'ports')).toMatchObject({
        status: 'fail',
        detail: `port ${port} (llm) is already in use`,
      });
      expect(report.status).toBe('fail');
    } finally {
      listener.kill();
    }
  });

  it('fails a GPU model on this host, and warns on a bare check', async () => {
    const model = await loadCheckSubject({
      model: path.resolve('test/fixtures/models/apertus-8b-instruct-2509'),
    });
    const forGpu = await checkHost(transport, { subject: model, root: host.root });
    expect(only(forGpu.results, 'gpu').status).toBe('fail');
    expect(only(forGpu.results, 'fit').detail).toMatch(/^no GPU to run the model on/);

    const bare = await checkHost(transport, { root: host.root });
    expect(only(bare.results, 'gpu')).toMatchObject({ status: 'warn' });
    expect(bare.results.some((r) => r.id === 'ports')).toBe(false);
  });

  it('checks hosts from targets in parallel, one connection each', async () => {
    const target = {
      kind: 'ssh' as const,
      address: host.address as string,
      identityFile: host.identityFile,
      knownHostsFile: host.knownHostsFile,
    };
    const report = await checkHosts(
      [
        { name: 'demo-a', target, root: host.root },
        { name: 'demo-b', target, root: host.root },
        { name: 'nowhere', target: { ...target, address: 'root@127.0.0.1:1' }, root: host.root },
      ],
      { subject },
    );
    expect(report.hosts.map((h) => [h.host, h.status === 'fail' ? 'fail' : 'passed'])).toEqual([
      ['demo-a', 'passed'],
      ['demo-b', 'passed'],
      ['nowhere', 'fail'],
    ]);
    expect(report.hosts[2]?.results[0]?.id).toBe('connect');
    expect(report.ok).toBe(false);
  });
});
