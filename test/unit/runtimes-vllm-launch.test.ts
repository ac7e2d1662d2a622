/**
 * What install runs for a vLLM service on a given host: the flags the recipe leaves out
 * come from the fit plan of the host's GPUs, the image from its driver. GPUs are the real
 * captures in test/fixtures/gpu (plus one derived from the H100 with less memory); the
 * model shapes are the published Apertus configs in test/fixtures/models.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_OVERHEAD_BYTES_PER_GPU } from '../../src/core/gpu/fit.js';
import type { GpuInventory } from '../../src/core/gpu/gpu-inventory.js';
import { estimateParameters, kvBytesPerToken, modelShapeFromConfig } from '../../src/core/gpu/model-shape.js';
import { GIB } from '../../src/core/gpu/units.js';
import type { VllmServiceSpec } from '../../src/core/layout/types.js';
import { parseContainerProbe, renderContainerRun } from '../../src/core/runtimes/container/engine.js';
import { planVllmLaunch, vllmLaunchRecord } from '../../src/core/runtimes/vllm/launch.js';
import { vllmRunSpec } from '../../src/core/runtimes/vllm/vllm.js';
import { gpuFixture } from '../fixtures/gpu/gpu-fixture.js';

const MODELS = path.resolve('test/fixtures/models');
const shape = (name: string) =>
  modelShapeFromConfig(
    JSON.parse(readFileSync(path.join(MODELS, name, 'config.json'), 'utf8')),
    `${name}/config.json`,
  );
const APERTUS_8B = shape('apertus-8b-instruct-2509');
const APERTUS_70B = shape('apertus-70b-instruct-2509');

/** A podman host with an NVIDIA CDI spec, as the container probe reports it. */
const HOST = parseContainerProbe(
  'engine=podman\nprogram=/usr/bin/podman\nversion=podman version 4.9.3\ncdi=/etc/cdi/nvidia.yaml\n',
);

/** vLLM image configs as runtime-facts 3.1 gives their CUDA: v0.20.0 is 13.0.2, its -cu129 variant 12.9.1. */
const IMAGE_CONFIGS = new Map<string, unknown>([
  ['vllm-cu130', { config: { Env: ['PATH=/usr/bin', 'CUDA_VERSION=13.0.2'] } }],
  ['vllm-cu129', { config: { Env: ['PATH=/usr/bin', 'CUDA_VERSION=12.9.1'] } }],
]);

function service(overrides: Partial<VllmServiceSpec> = {}): VllmServiceSpec {
  return {
    name: 'chat',
    runtime: 'vllm',
    image: { component: 'vllm-cu130', reference: 'docker.io/vllm/vllm-openai:v0.20.0' },
    model: { component: 'model', path: '', id: 'apertus' },
    port: 18000,
    bind: '127.0.0.1',
    embeddings: false,
    dtype: 'auto',
    extraArgs: [],
    ...overrides,
  };
}

/** The H100 capture with each GPU's memory cut to `gib`: a smaller card of the same kind. */
function smallerH100(gib: number): GpuInventory {
  const inventory = gpuFixture('h100-80gb-hbm3');
  if (inventory.state !== 'ok') throw new Error('fixture');
  return {
    ...inventory,
    gpus: inventory.gpus.map((g) => ({ ...g, memoryTotalBytes: gib * GIB, memoryFreeBytes: gib * GIB })),
  };
}

/** The argv install runs for the service on a host without systemd. */
function argvFor(spec: VllmServiceSpec): string[] {
  if (!HOST) throw new Error('probe');
  return renderContainerRun(vllmRunSpec(spec, '/var/lib/apertus/current', '/var/lib/apertus'), HOST);
}

function flag(argv: readonly string[], name: string): string | undefined {
  const at = argv.indexOf(name);
  return at < 0 ? undefined : argv[at + 1];
}

function memoryOf(inventory: GpuInventory): number {
  if (inventory.state !== 'ok') throw new Error('no GPUs');
  return Math.min(...inventory.gpus.map((g) => g.memoryTotalBytes ?? 0));
}

describe('vLLM launch flags from the fit plan (install)', () => {
  it('Apertus-8B on one H100 80GB: TP 1, the full 65,536-token context, the default utilization', () => {
    const spec = planVllmLaunch(service(), {
      gpu: gpuFixture('h100-80gb-hbm3'),
      workload: { shape: APERTUS_8B },
      imageConfigs: IMAGE_CONFIGS,
    });
    expect(spec.chosen).toMatchObject({
      tensorParallelSize: 'fit',
      maxModelLen: 'fit',
      gpuMemoryUtilization: 'fit',
      image: 'recipe',
    });
    expect(spec.chosen?.detail).toContain('NVIDIA H100 80GB HBM3');
    const argv = argvFor(spec);
    expect(flag(argv, '--tensor-parallel-size')).toBe('1');
    expect(flag(argv, '--max-model-len')).toBe(String(APERTUS_8B.maxPositionEmbeddings));
    expect(flag(argv, '--gpu-memory-utilization')).toBe('0.9');
    expect(argv).not.toContain('--ipc');
    expect(argv).toContain('docker.io/vllm/vllm-openai:v0.20.0');
    expect(vllmLaunchRecord(spec)).toMatchObject({ tensorParallelSize: 1, gpuMemoryUtilization: 0.9 });
  });

  it('Apertus-8B on a 24 GB L4 and on an H100 cut to 20 GiB: a shorter context whose KV cache fits', () => {
    for (const gpu of [gpuFixture('l4-24gb'), smallerH100(20)]) {
      const spec = planVllmLaunch(service(), {
        gpu,
        workload: { shape: APERTUS_8B },
        imageConfigs: IMAGE_CONFIGS,
      });
      const context = Number(flag(argvFor(spec), '--max-model-len'));
      expect(spec.chosen?.maxModelLen).toBe('fit');
      expect(context).toBeGreaterThan(0);
      expect(context).toBeLessThan(APERTUS_8B.maxPositionEmbeddings as number);
      // What vLLM will allocate must fit what is left of 0.9 of the card after weights and overhead.
      const weights = estimateParameters(APERTUS_8B) * APERTUS_8B.bytesPerParameter;
      const left = 0.9 * memoryOf(gpu) - weights - DEFAULT_OVERHEAD_BYTES_PER_GPU;
      expect(context * kvBytesPerToken(APERTUS_8B)).toBeLessThanOrEqual(left * 1.01);
    }
  });

  it('Apertus-70B on four H100s: tensor parallelism over more than one GPU, with the host IPC namespace', () => {
    const spec = planVllmLaunch(service({ model: { component: 'model', path: '', id: 'apertus-70b' } }), {
      gpu: gpuFixture('4x-h100-80gb-hbm3'),
      workload: { shape: APERTUS_70B },
      imageConfigs: IMAGE_CONFIGS,
    });
    const argv = argvFor(spec);
    const tp = Number(flag(argv, '--tensor-parallel-size'));
    // 70 B parameters in bf16 are about 141 GB: more than one 80 GB card holds.
    expect(tp).toBeGreaterThan(1);
    expect(tp).toBeLessThanOrEqual(4);
    expect(flag(argv, '--ipc')).toBe('host');
    expect(flag(argv, '--device')).toBe('nvidia.com/gpu=all');
  });

  it('recipe values win over the fit plan', () => {
    const spec = planVllmLaunch(
      service({ maxModelLen: 8192, tensorParallelSize: 2, gpuMemoryUtilization: 0.5 }),
      {
        gpu: gpuFixture('4x-h100-80gb-hbm3'),
        workload: { shape: APERTUS_8B },
        imageConfigs: IMAGE_CONFIGS,
      },
    );
    expect(spec.chosen).toMatchObject({
      tensorParallelSize: 'recipe',
      maxModelLen: 'recipe',
      gpuMemoryUtilization: 'recipe',
    });
    const argv = argvFor(spec);
    expect(flag(argv, '--tensor-parallel-size')).toBe('2');
    expect(flag(argv, '--max-model-len')).toBe('8192');
    expect(flag(argv, '--gpu-memory-utilization')).toBe('0.5');
  });

  it('no GPU found: recipe values and defaults, and says why', () => {
    const spec = planVllmLaunch(service({ maxModelLen: 4096 }), {
      gpu: gpuFixture('no-driver-nvidia-smi-missing'),
      workload: { shape: APERTUS_8B },
      imageConfigs: IMAGE_CONFIGS,
    });
    expect(spec.chosen).toMatchObject({ tensorParallelSize: 'default', maxModelLen: 'recipe' });
    expect(spec.chosen?.detail).toMatch(/no GPU/);
    expect(vllmLaunchRecord(spec)).toEqual({
      tensorParallelSize: 1,
      maxModelLen: 4096,
      gpuMemoryUtilization: 0.9,
      chosen: spec.chosen,
    });
  });
});

describe('vLLM image by the host driver (install)', () => {
  const twoImages = service({
    alternativeImages: [{ component: 'vllm-cu129', reference: 'docker.io/vllm/vllm-openai:v0.20.0-cu129' }],
  });

  it('driver 580 (the H100 capture) runs the CUDA 13.0 image', () => {
    const spec = planVllmLaunch(twoImages, {
      gpu: gpuFixture('h100-80gb-hbm3'),
      workload: { shape: APERTUS_8B },
      imageConfigs: IMAGE_CONFIGS,
    });
    expect(spec.image.component).toBe('vllm-cu130');
    expect(spec.chosen?.image).toBe('driver');
    expect(argvFor(spec)).toContain('docker.io/vllm/vllm-openai:v0.20.0');
  });

  it('driver 575 runs the -cu129 image', () => {
    const spec = planVllmLaunch(twoImages, {
      gpu: gpuFixture('h100-driver-575'),
      workload: { shape: APERTUS_8B },
      imageConfigs: IMAGE_CONFIGS,
    });
    expect(spec.image.component).toBe('vllm-cu129');
    expect(spec.chosen?.detail).toContain('CUDA 12.9.1 by driver 575.57.08');
    expect(argvFor(spec)).toContain('docker.io/vllm/vllm-openai:v0.20.0-cu129');
  });

  it('a driver older than every image is refused with the driver to install', () => {
    const inventory = gpuFixture('h100-driver-575');
    if (inventory.state !== 'ok') throw new Error('fixture');
    expect(() =>
      planVllmLaunch(twoImages, {
        gpu: { ...inventory, driverVersion: '535.104.05' },
        workload: { shape: APERTUS_8B },
        imageConfigs: IMAGE_CONFIGS,
      }),
    ).toThrow(expect.objectContaining({ code: 'vllm-driver-too-old' }));
  });
});
