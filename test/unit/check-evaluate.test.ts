import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckResult } from '../../src/core/check/check-result.js';
import { createLocalTransport } from '../../src/core/host/local-transport.js';
import { checkHost, evaluateHost } from '../../src/core/operations/check.js';
import { type CheckSubject, loadCheckSubject } from '../../src/core/operations/check-subject.js';
import { type HostProbe, parseProbe, runProbe } from '../../src/core/target/probe.js';
import { parseTranscript } from '../../src/core/target/transcript.js';
import { generateTinyModel } from '../../src/core/tiny-model/generate.js';
import { type GpuFixtureCase, gpuFixture, gpuFixtureSections } from '../fixtures/gpu/gpu-fixture.js';

const APERTUS_8B_DIR = path.resolve('test/fixtures/models/apertus-8b-instruct-2509');

let work: string;
let root: string;
let localProbe: HostProbe;
let apertus8b: CheckSubject;
let demoRecipe: CheckSubject;
let listener: Server;
let busyPort: number;

/** This machine's real facts with the GPUs of a fixture: the GPU is the one thing we lack. */
function hostWith(gpus: GpuFixtureCase, changes: Partial<HostProbe> = {}): HostProbe {
  return { ...localProbe, gpu: gpuFixture(gpus), ...changes };
}

function evaluate(
  probe: HostProbe,
  options: Partial<Parameters<typeof evaluateHost>[1]> = {},
): CheckResult[] {
  const now = Date.now();
  return evaluateHost(probe, { sentAtMs: now, receivedAtMs: now, ...options }).results;
}

function result(results: CheckResult[], id: CheckResult['id']): CheckResult {
  const found = results.find((r) => r.id === id);
  if (!found) throw new Error(`no ${id} result in ${results.map((r) => r.id).join(', ')}`);
  return found;
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'apertus-check-'));
  root = path.join(work, 'root');
  listener = createServer();
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  busyPort = (listener.address() as { port: number }).port;
  localProbe = (await runProbe(createLocalTransport(), { root })).probe;
  apertus8b = (await loadCheckSubject({ model: APERTUS_8B_DIR })) as CheckSubject;
  // The demo recipe with its generated model, on a port something already listens on.
  const recipe = path.join(work, 'recipe');
  await mkdir(path.join(recipe, 'model'), { recursive: true });
  await writeFile(path.join(recipe, 'model', 'tiny-llama.gguf'), generateTinyModel());
  await writeFile(
    path.join(recipe, 'apertus.yaml'),
    [
      'apiVersion: apertus.dev/v1',
      'kind: Bundle',
      'metadata: { name: demo, version: 0.1.0 }',
      'components:',
      '  - { name: model, kind: model, source: "file:model" }',
      'services:',
      `  - { name: llm, runtime: llamacpp, model: model/tiny-llama.gguf, modelId: tiny, port: ${busyPort}, threads: 1, contextSize: 256 }`,
    ].join('\n'),
  );
  demoRecipe = (await loadCheckSubject({ recipe })) as CheckSubject;
});

afterAll(async () => {
  await new Promise((resolve) => listener.close(resolve));
  await rm(work, { recursive: true, force: true });
});

describe('the probe on this machine (local transport, real commands)', () => {
  it('reads OS, arch, libc, memory, the install root and its filesystem', () => {
    expect(localProbe.kernel).toMatch(/^Linux /);
    // Node's name for this CPU, in the kernel's words (`uname -m`), which is what the probe reports.
    const kernelArch: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };
    expect(localProbe.arch).toBe(kernelArch[os.arch()]);
    expect(localProbe.os?.prettyName).toBeTruthy();
    expect(localProbe.libc?.family).toBe('glibc');
    expect(localProbe.memory?.totalBytes).toBe(os.totalmem());
    expect(localProbe.cpus).toBeGreaterThan(0);
    expect(localProbe.root).toMatchObject({
      path: root,
      exists: false,
      writable: true,
      existingDir: work,
      current: null,
    });
    expect(localProbe.disks[0]).toMatchObject({ path: root, measured: work });
    expect(localProbe.disks[0]?.availableBytes).toBeGreaterThan(0);
    expect(Math.abs((localProbe.clockSeconds ?? 0) * 1000 - Date.now())).toBeLessThan(60_000);
  });

  it('sees a port that is listening', () => {
    expect(localProbe.listeningPorts?.has(busyPort)).toBe(true);
  });

  it('lists the blobs already in the store, and partial uploads with their size', async () => {
    const store = path.join(root, 'blobs', 'sha256');
    await mkdir(store, { recursive: true });
    const hex = 'a'.repeat(64);
    await writeFile(path.join(store, hex), 'x');
    await writeFile(path.join(store, `.incoming-${'b'.repeat(64)}`), 'xyz');
    const probe = (await runProbe(createLocalTransport(), { root })).probe;
    expect([...probe.root.blobs]).toEqual([[hex, 1]]);
    expect([...probe.root.partial]).toEqual([['b'.repeat(64), 3]]);
    expect(probe.root.exists).toBe(true);
    await rm(path.join(root), { recursive: true });
  });

  it('parses the OS of the real H100 capture', () => {
    const sections = parseTranscript(
      `${gpuFixtureSections('h100-80gb-hbm3')
        .map((s) => `=== $ ${s.command}\n${s.output}\n# exit ${s.exitCode}`)
        .join('\n')}\n`,
    );
    const probe = parseProbe(sections, { root: '/var/lib/apertus' });
    expect(probe.os).toEqual({ id: 'ubuntu', versionId: '24.04', prettyName: 'Ubuntu 24.04.3 LTS' });
    expect(probe.cpus).toBe(16);
    expect(probe.gpu.state === 'ok' ? probe.gpu.gpus.map((g) => g.name) : probe.gpu).toEqual([
      'NVIDIA H100 80GB HBM3',
    ]);
  });
});

describe('GPU checks against the fixtures', () => {
  it('H100 + Apertus-8B + CUDA 13.0 image: GPU, driver, CUDA, compute capability and fit ok', () => {
    const results = evaluate(hostWith('h100-80gb-hbm3'), {
      subject: apertus8b,
      image: { version: '13.0.2', source: 'CUDA_VERSION' },
    });
    expect(result(results, 'gpu')).toMatchObject({
      status: 'ok',
      detail: '1 x NVIDIA H100 80GB HBM3 (81559 MiB)',
    });
    expect(result(results, 'driver').detail).toBe(
      'driver 580.159.04 (reports CUDA 13.0); runs images up to CUDA 13.0 Update 2 per the driver table',
    );
    expect(result(results, 'cuda').status).toBe('ok');
    expect(result(results, 'compute-capability')).toMatchObject({
      status: 'ok',
      detail: 'NVIDIA H100 80GB HBM3: compute capability 9.0 serves bfloat16',
    });
    expect(result(results, 'mig')).toMatchObject({ status: 'ok', detail: 'MIG is off' });
    const fit = result(results, 'fit');
    expect(fit.status).toBe('ok');
    expect(fit.detail).toContain('fits at max_model_len 65536 with tensor_parallel_size 1');
    expect(fit.detail).toContain('largest context 65536');
    expect(results.find((r) => r.id === 'gpu-memory-free')).toBeUndefined();
  });

  it('the derived driver 575 fails a CUDA 13.0 image, naming the minimum driver', () => {
    const results = evaluate(hostWith('h100-driver-575'), {
      subject: apertus8b,
      image: { version: '13.0', source: 'given' },
    });
    expect(result(results, 'cuda')).toMatchObject({ status: 'fail' });
    expect(result(results, 'cuda').detail).toContain(
      'needs driver >= 580.65.06 (any CUDA 13.x needs >= 580)',
    );
  });

  it('the R470 driver, with no image given, is judged against the oldest Apertus image (CUDA 12.8.1)', () => {
    const results = evaluate(hostWith('a100-40gb-r470-no-compute-cap'), { subject: apertus8b });
    expect(result(results, 'cuda').status).toBe('fail');
    expect(result(results, 'cuda').detail).toContain('CUDA 12.8 Update 1 needs driver >= 570.124.06');
    expect(result(results, 'cuda').detail).toContain('no image given');
    expect(result(results, 'compute-capability').detail).toContain(
      '(from the GPU name: this driver has no compute_cap field)',
    );
    expect(result(results, 'gpu').detail).toContain('no compute_cap query field');
  });

  it('the derived 24 GB GPU fails the 8B at full context with a context that fits', () => {
    const fit = result(evaluate(hostWith('l4-24gb'), { subject: apertus8b }), 'fit');
    expect(fit.status).toBe('fail');
    expect(fit.detail).toMatch(/^max_model_len 65536 does not fit/);
    expect(fit.hint).toMatch(/^max_model_len 25600 fits at tensor_parallel_size 1/);
    // The operator takes the hint: ok.
    expect(
      result(evaluate(hostWith('l4-24gb'), { subject: apertus8b, fit: { maxModelLen: 25600 } }), 'fit')
        .status,
    ).toBe('ok');
  });

  it('MIG on: a warning that names the slices, and a fit sized to one slice', () => {
    const results = evaluate(hostWith('h100-mig-enabled'), { subject: apertus8b });
    const mig = result(results, 'mig');
    expect(mig.status).toBe('warn');
    expect(mig.detail).toContain('GPU 0: 3g.40gb (42.1 GB), 3g.40gb (42.1 GB)');
    expect(result(results, 'fit').detail).toContain('(MIG 3g.40gb device 0 on GPU 0)');
    expect(result(results, 'fit').detail).toContain('37.9 GB usable per GPU');
  });

  it('no driver: a GPU model fails, a CPU-only bundle does not need one, a bare check warns', () => {
    for (const name of ['no-driver-nvidia-smi-missing', 'no-driver-not-loaded'] as const) {
      const forGpu = evaluate(hostWith(name), { subject: apertus8b });
      expect(result(forGpu, 'gpu').status).toBe('fail');
      expect(result(forGpu, 'gpu').hint).toBeTruthy();
      expect(result(forGpu, 'fit')).toMatchObject({ status: 'fail' });
      expect(result(forGpu, 'fit').detail).toBe(
        'no GPU to run the model on: it needs 16.1 GB weights plus 128 KiB of KV cache per token (8.6 GB at max_model_len 65536)',
      );
      expect(forGpu.find((r) => r.id === 'cuda')).toBeUndefined();

      const forCpu = evaluate(hostWith(name), { subject: demoRecipe });
      expect(result(forCpu, 'gpu')).toMatchObject({ status: 'ok' });
      expect(result(forCpu, 'gpu').detail).toContain('not needed');

      expect(result(evaluate(hostWith(name)), 'gpu').status).toBe('warn');
    }
    expect(result(evaluate(hostWith('no-driver-not-loaded')), 'gpu').hint).toContain('modprobe nvidia');
  });

  it('warns when other processes hold GPU memory vLLM would want', () => {
    const probe = hostWith('h100-80gb-hbm3');
    if (probe.gpu.state !== 'ok') throw new Error('fixture');
    const gpu = probe.gpu.gpus[0];
    if (!gpu) throw new Error('fixture');
    probe.gpu = { ...probe.gpu, gpus: [{ ...gpu, memoryFreeBytes: (gpu.memoryTotalBytes ?? 0) / 2 }] };
    const free = result(evaluate(probe, { subject: apertus8b }), 'gpu-memory-free');
    expect(free.status).toBe('warn');
    expect(free.hint).toContain('gpu_memory_utilization 0.5');
  });
});

describe('container runtime and toolkit (runtime-facts 7)', () => {
  const base = { nvidiaContainerCli: false, nvidiaContainerRuntime: false, cdiSpecs: [] as string[] };

  it('podman needs a CDI spec naming nvidia.com/gpu', () => {
    const none = evaluate(
      hostWith('h100-80gb-hbm3', { containers: { ...base, podman: 'podman version 4.9.3' } }),
      {
        subject: apertus8b,
      },
    );
    expect(result(none, 'container-runtime').status).toBe('ok');
    expect(result(none, 'container-toolkit')).toMatchObject({ status: 'fail' });
    expect(result(none, 'container-toolkit').hint).toContain(
      'nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml',
    );
    const cdi = evaluate(
      hostWith('h100-80gb-hbm3', {
        containers: { ...base, podman: 'podman version 4.9.3', cdiSpecs: ['/etc/cdi/nvidia.yaml'] },
      }),
      { subject: apertus8b },
    );
    expect(result(cdi, 'container-toolkit').status).toBe('ok');
  });

  it('docker needs the nvidia runtime registered', () => {
    const docker = { ...base, docker: 'Docker version 28.2.2' };
    expect(
      result(
        evaluate(hostWith('h100-80gb-hbm3', { containers: { ...docker, dockerRuntimes: ['runc'] } }), {
          subject: apertus8b,
        }),
        'container-toolkit',
      ).hint,
    ).toContain('nvidia-ctk runtime configure --runtime=docker');
    expect(
      result(
        evaluate(
          hostWith('h100-80gb-hbm3', { containers: { ...docker, dockerRuntimes: ['nvidia', 'runc'] } }),
          { subject: apertus8b },
        ),
        'container-toolkit',
      ).status,
    ).toBe('ok');
    const down = evaluate(
      hostWith('h100-80gb-hbm3', {
        containers: { ...docker, dockerError: 'Cannot connect to the Docker daemon' },
      }),
      {
        subject: apertus8b,
      },
    );
    expect(result(down, 'container-runtime')).toMatchObject({ status: 'fail' });
  });

  it('none at all fails a vLLM model, and is not needed for a CPU bundle', () => {
    expect(
      result(
        evaluate(hostWith('h100-80gb-hbm3', { containers: base }), { subject: apertus8b }),
        'container-runtime',
      ).status,
    ).toBe('fail');
    expect(
      result(
        evaluate(hostWith('h100-80gb-hbm3', { containers: base }), { subject: demoRecipe }),
        'container-runtime',
      ).status,
    ).toBe('ok');
  });
});

describe('host checks', () => {
  it('a port a service needs that is taken fails; with a current release it only warns', () => {
    const ports = evaluate(localProbe, { subject: demoRecipe }).filter((r) => r.id === 'ports');
    expect(ports).toEqual([
      {
        id: 'ports',
        subject: 'llm',
        status: 'fail',
        detail: `port ${busyPort} (llm) is already in use`,
        hint: `Find the listener with ss -ltnp 'sport = :${busyPort}' on the host and stop it, or change the service's port in the recipe.`,
      },
    ]);
    const upgraded = evaluate(
      { ...localProbe, root: { ...localProbe.root, current: 'releases/demo/0.0.9' } },
      { subject: demoRecipe },
    );
    expect(result(upgraded, 'ports').status).toBe('warn');
  });

  it('judges the CPU model against memory, and the recipe bytes against the disk', () => {
    const results = evaluate(localProbe, { subject: demoRecipe });
    expect(result(results, 'memory').status).toBe('ok');
    const disk = result(results, 'disk');
    expect(disk.status).toBe('ok');
    expect(disk.detail).toContain('the install writes');
    const full = evaluate(
      { ...localProbe, disks: localProbe.disks.map((d) => ({ ...d, availableBytes: 1000 })) },
      { subject: demoRecipe },
    );
    expect(result(full, 'disk').status).toBe('fail');
    expect(result(full, 'disk').hint).toMatch(/^Free .* on \S+, or set root: in the inventory/);
  });

  it('reports clock skew beyond 30 s', () => {
    const now = Date.now();
    const skewed = evaluateHost(
      { ...localProbe, clockSeconds: now / 1000 - 120 },
      { sentAtMs: now, receivedAtMs: now + 50 },
    ).results;
    expect(result(skewed, 'clock')).toMatchObject({
      status: 'warn',
      detail: "host clock is 120.0 s behind this machine's",
    });
  });

  it('an install root the user cannot write fails', () => {
    const results = evaluate({ ...localProbe, root: { ...localProbe.root, writable: false } });
    expect(result(results, 'install-root').status).toBe('fail');
  });

  it('checkHost runs the whole check over the local transport', async () => {
    const report = await checkHost(createLocalTransport(), { root, subject: demoRecipe });
    expect(report.transport).toBe('local');
    expect(report.results.map((r) => r.id)).toEqual(
      expect.arrayContaining([
        'os',
        'arch',
        'libc',
        'clock',
        'install-root',
        'disk',
        'ports',
        'memory',
        'gpu',
        'container-runtime',
      ]),
    );
    expect(report.status).toBe('fail'); // the busy port
    expect(report.facts?.root.path).toBe(root);
    expect(report.memory[0]?.report.kvBytes).toBe(2 * 2 * 2 * 16 * 2 * 256);
  });
});
