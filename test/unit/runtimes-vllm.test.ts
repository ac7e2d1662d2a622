import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import type { ComponentView } from '../../src/core/bundle/component-files.js';
import { fitDevices } from '../../src/core/check/evaluate-gpu.js';
import { planFit } from '../../src/core/gpu/fit.js';
import { modelShapeFromConfig } from '../../src/core/gpu/model-shape.js';
import {
  type ContainerHost,
  renderContainerRun,
  renderContainerUnit,
} from '../../src/core/runtimes/container/engine.js';
import { vllmRuntime } from '../../src/core/runtimes/vllm/adapter.js';
import { readLoraRank } from '../../src/core/runtimes/vllm/lora-rank.js';
import type { VllmServiceSpec } from '../../src/core/runtimes/vllm/spec.js';
import {
  embeddingFlags,
  renderVllmContainer,
  selectBundledVllmImage,
  VLLM_LORA_RANKS,
  vllmFlagsFromFit,
  vllmMaxLoraRank,
  vllmRunSpec,
} from '../../src/core/runtimes/vllm/vllm.js';
import { gpuFixture } from '../fixtures/gpu/gpu-fixture.js';

const MODELS = path.resolve('test/fixtures/models');
const shape = (name: string) =>
  modelShapeFromConfig(
    JSON.parse(readFileSync(path.join(MODELS, name, 'config.json'), 'utf8')),
    `${name}/config.json`,
  );
const APERTUS_8B = shape('apertus-8b-instruct-2509');
const APERTUS_70B = shape('apertus-70b-instruct-2509');

function driverOf(name: Parameters<typeof gpuFixture>[0]): string {
  const inventory = gpuFixture(name);
  if (inventory.state !== 'ok') throw new Error(`${name}: ${inventory.state}`);
  return inventory.driverVersion as string;
}

const podman: ContainerHost = {
  engine: 'podman',
  program: '/usr/bin/podman',
  version: 'podman version 4.9.3',
  gpu: 'cdi',
  cdiSpecs: ['/var/run/cdi/nvidia.yaml'],
  systemd: true,
};

describe('vLLM image by host driver (runtime-facts 3.1, 4.1)', () => {
  /** The images runtime-facts 3.1 names, with the CUDA_VERSION their configs carry. */
  const released = [
    { image: 'vllm-openai:v0.10.2', config: { config: { Env: ['CUDA_VERSION=12.8.1'] } } },
    { image: 'vllm-openai:v0.20.0', config: { config: { Env: ['CUDA_VERSION=13.0.2'] } } },
    { image: 'vllm-openai:v0.20.0-cu129', config: { config: { Env: ['CUDA_VERSION=12.9.1'] } } },
  ];

  it('runs the CUDA 13 image on the 580 H100 capture and the -cu129 one on the 575 capture', () => {
    expect(selectBundledVllmImage(released, driverOf('h100-80gb-hbm3'))).toMatchObject({
      image: 'vllm-openai:v0.20.0',
      cuda: { version: '13.0.2' },
    });
    expect(selectBundledVllmImage(released, driverOf('h100-driver-575'))).toMatchObject({
      image: 'vllm-openai:v0.20.0-cu129',
      cuda: { version: '12.9.1' },
    });
    expect(selectBundledVllmImage(released, '570.124.06').image).toBe('vllm-openai:v0.10.2');
    expect(() => selectBundledVllmImage(released, '535.104.05')).toThrow(
      /runs none of the bundle's vLLM images/,
    );
  });

  it('chooses among bundled images by the CUDA_VERSION in their configs', () => {
    const images = [
      { image: 'vllm-openai:v0.20.0-cu129', config: { config: { Env: ['CUDA_VERSION=12.9.1'] } } },
      { image: 'vllm-openai:v0.20.0', config: { config: { Env: ['CUDA_VERSION=13.0.2'] } } },
    ];
    expect(selectBundledVllmImage(images, '580.95.05').image).toBe('vllm-openai:v0.20.0');
    expect(selectBundledVllmImage(images, '575.57.08').image).toBe('vllm-openai:v0.20.0-cu129');
    expect(() => selectBundledVllmImage(images, '570.124.06')).toThrow(
      /runs none of the bundle's vLLM images/,
    );
  });
});

describe('vLLM flags from the fit plan', () => {
  it('Apertus-8B on one H100: TP 1, the full 65536 context', () => {
    const report = planFit({ model: APERTUS_8B, ...fitDevices(gpuFixture('h100-80gb-hbm3')) });
    expect(vllmFlagsFromFit(report)).toEqual({
      tensorParallelSize: 1,
      maxModelLen: 65536,
      gpuMemoryUtilization: report.gpuMemoryUtilization,
    });
  });

  it('Apertus-70B on 4x H100: TP 4; asked for TP 2, the longest context TP 2 holds', () => {
    const four = fitDevices(gpuFixture('4x-h100-80gb-hbm3'));
    expect(vllmFlagsFromFit(planFit({ model: APERTUS_70B, ...four })).tensorParallelSize).toBe(4);
    const two = planFit({ model: APERTUS_70B, ...four, tensorParallelSize: 2 });
    const largest = two.options.find((o) => o.tensorParallelSize === 2)?.largestContext;
    expect(largest).toBeGreaterThan(0);
    expect(vllmFlagsFromFit(two)).toMatchObject({ tensorParallelSize: 2, maxModelLen: largest });
  });

  it('Apertus-70B on one H100 does not fit: the error carries the fit hint', () => {
    const report = planFit({ model: APERTUS_70B, ...fitDevices(gpuFixture('h100-80gb-hbm3')) });
    expect(() => vllmFlagsFromFit(report)).toThrow(/does not fit/);
  });
});

describe('vLLM container', () => {
  const base = {
    service: 'llm',
    image: 'docker.io/vllm/vllm-openai:v0.20.0',
    modelDir: '/var/lib/apertus/current/model',
    servedModelName: 'swiss-ai/Apertus-8B-Instruct-2509',
    port: 18000,
    cacheDir: '/var/lib/apertus/data/llm-cache',
    fit: { tensorParallelSize: 4, maxModelLen: 32768, gpuMemoryUtilization: 0.9 },
  };

  it('explicit entrypoint, positional model path, offline env, fit flags, ipc host with TP', () => {
    const argv = renderContainerRun(renderVllmContainer(base), podman);
    const image = argv.indexOf(base.image);
    expect(argv.slice(argv.indexOf('--entrypoint'), image + 1)).toEqual(['--entrypoint', 'vllm', base.image]);
    expect(argv.slice(image + 1)).toEqual([
      'serve',
      '/models/model',
      '--served-model-name',
      'swiss-ai/Apertus-8B-Instruct-2509',
      '--host',
      '0.0.0.0',
      '--port',
      '8000',
      '--tensor-parallel-size',
      '4',
      '--max-model-len',
      '32768',
      '--gpu-memory-utilization',
      '0.9',
      '--dtype',
      'auto',
    ]);
    expect(argv).toContain('HF_HUB_OFFLINE=1');
    expect(argv).toContain('VLLM_NO_USAGE_STATS=1');
    expect(argv).toContain('/var/lib/apertus/current/model:/models/model:ro');
    expect(argv).toContain('/var/lib/apertus/data/llm-cache:/var/cache/vllm:rw');
    expect(argv).toContain('127.0.0.1:18000:8000/tcp');
    expect(argv).toContain('nvidia.com/gpu=all');
    expect(argv.slice(argv.indexOf('--ipc'), argv.indexOf('--ipc') + 2)).toEqual(['--ipc', 'host']);
    expect(
      renderContainerRun(
        renderVllmContainer({ ...base, fit: { ...base.fit, tensorParallelSize: 1 } }),
        podman,
      ),
    ).not.toContain('--ipc');
  });

  it('an embeddings instance: --runner pooling from v0.10.1, --task embed before', () => {
    expect(embeddingFlags('docker.io/vllm/vllm-openai:v0.10.0')).toEqual(['--task', 'embed']);
    expect(embeddingFlags('docker.io/vllm/vllm-openai:v0.10.2')).toEqual(['--runner', 'pooling']);
    expect(embeddingFlags('docker.io/vllm/vllm-openai:v0.20.0-cu129')).toEqual(['--runner', 'pooling']);
    expect(embeddingFlags(`docker.io/vllm/vllm-openai@sha256:${'a'.repeat(64)}`)).toEqual([
      '--runner',
      'pooling',
    ]);
    const embed = renderVllmContainer({
      ...base,
      service: 'embed',
      servedModelName: 'BAAI/bge-m3',
      port: 18001,
      embeddings: true,
      fit: { tensorParallelSize: 1, maxModelLen: 8192, gpuMemoryUtilization: 0.08 },
    });
    expect(embed.args.slice(-2)).toEqual(['--runner', 'pooling']);
    expect(embed.args).toContain('0.08');
  });

  it('refuses flags vLLM would reject', () => {
    expect(() => renderVllmContainer({ ...base, fit: { ...base.fit, gpuMemoryUtilization: 1.5 } })).toThrow(
      /gpuMemoryUtilization/,
    );
    expect(() => renderVllmContainer({ ...base, fit: { ...base.fit, tensorParallelSize: 0 } })).toThrow(
      /tensorParallelSize/,
    );
  });

  it.skipIf(!existsSync('/usr/bin/systemd-analyze') || !existsSync('/usr/bin/podman'))(
    'its systemd unit passes systemd-analyze verify',
    async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'apertus-vllm-unit-'));
      try {
        const file = path.join(dir, 'apertus-llm.service');
        await writeFile(file, renderContainerUnit(renderVllmContainer(base), podman));
        const result = await execa('systemd-analyze', ['verify', file], { reject: false });
        expect({ exitCode: result.exitCode, stderr: result.stderr }).toEqual({ exitCode: 0, stderr: '' });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
});

describe('vLLM LoRA adapters', () => {
  const release = '/var/lib/apertus/releases/apertus-8b/1.0.0';
  const service: VllmServiceSpec = {
    name: 'llm',
    runtime: 'vllm',
    image: { component: 'vllm', reference: 'docker.io/vllm/vllm-openai:v0.20.0' },
    model: { component: 'model', path: '', id: 'apertus' },
    port: 18000,
    bind: '127.0.0.1',
    embeddings: false,
    dtype: 'auto',
    extraArgs: ['--max-loras', '2'],
    adapters: [
      { component: 'sql-lora', id: 'apertus-sql', rank: 12 },
      { component: 'legal-lora', id: 'apertus-legal', rank: 40 },
    ],
  };

  it('renders --enable-lora, --max-lora-rank rounded up to a rank vLLM takes, and --lora-modules by absolute path', () => {
    const argv = renderContainerRun(vllmRunSpec(service, release, '/var/lib/apertus'), podman);
    const lora = argv.indexOf('--enable-lora');
    expect(argv.slice(lora)).toEqual([
      '--enable-lora',
      '--max-lora-rank',
      '64',
      '--lora-modules',
      'apertus-sql=/models/sql-lora',
      'apertus-legal=/models/legal-lora',
      // The recipe's own flags come after ours.
      '--max-loras',
      '2',
    ]);
    // Each adapter directory of the release, read-only, at the path vLLM is given.
    expect(argv).toContain(`${release}/sql-lora:/models/sql-lora:ro`);
    expect(argv).toContain(`${release}/legal-lora:/models/legal-lora:ro`);
    expect(argv).toContain(`${release}/model:/models/model:ro`);
    const plain = renderContainerRun(
      vllmRunSpec({ ...service, adapters: undefined }, release, '/var/lib/apertus'),
      podman,
    );
    expect(plain.filter((a) => /lora/.test(a))).toEqual(['--max-loras']);
  });

  it("rounds each rank up to one of vLLM's MaxLoRARanks, and refuses a rank above 512", () => {
    expect(VLLM_LORA_RANKS).toEqual([1, 8, 16, 32, 64, 128, 256, 320, 512]);
    const cases: Array<[number[], number]> = [
      [[1], 1],
      [[2], 8],
      [[8], 8],
      [[9, 4], 16],
      [[256], 256],
      [[257], 320],
      [[512], 512],
    ];
    for (const [ranks, expected] of cases) expect(vllmMaxLoraRank('llm', ranks), `${ranks}`).toBe(expected);
    expect(() => vllmMaxLoraRank('llm', [8, 1024])).toThrow(/rank 1 to 512, and an adapter has rank 1024/);
  });

  it("gives the host check its --max-lora-rank and --max-loras, so the fit counts vLLM's LoRA buffers", async () => {
    const fileOf = (filePath: string, content: string) => ({
      path: filePath,
      size: Buffer.byteLength(content),
      read: async (offset: number, length: number) => Buffer.from(content).subarray(offset, offset + length),
    });
    const viewOf = (name: string, files: ReturnType<typeof fileOf>[]): ComponentView => ({
      name,
      kind: name === 'model' ? 'model' : 'adapter',
      files,
      bytes: undefined,
      partial: false,
      missing: () => new Error('missing') as never,
    });
    const config = readFileSync(path.join(MODELS, 'apertus-8b-instruct-2509', 'config.json'), 'utf8');
    const components = new Map([
      ['model', viewOf('model', [fileOf('config.json', config)])],
      ['sql-lora', viewOf('sql-lora', [fileOf('adapter_config.json', '{"r":12}')])],
      ['legal-lora', viewOf('legal-lora', [fileOf('adapter_config.json', '{"r":40}')])],
    ]);
    // A bundle records each rank; 40 is served at 64, and the recipe asks for 2 at once.
    const [bundled] = (await vllmRuntime.workloads?.(service, components)) ?? [];
    expect(bundled?.lora).toEqual({ rank: 64, maxLoras: 2 });
    // A recipe's adapters have their ranks read from their files; vLLM's default of 1 at once.
    const unread = service.adapters?.map(({ rank: _rank, ...adapter }) => adapter);
    const [fromFiles] =
      (await vllmRuntime.workloads?.({ ...service, adapters: unread, extraArgs: [] }, components)) ?? [];
    expect(fromFiles?.lora).toEqual({ rank: 64, maxLoras: 1 });
    const [plain] = (await vllmRuntime.workloads?.({ ...service, adapters: undefined }, components)) ?? [];
    expect(plain?.lora).toBeUndefined();
  });

  it("reads the rank from adapter_config.json: r, or rank_pattern's highest", async () => {
    const view = (config: string | undefined) => ({
      name: 'sql-lora',
      files:
        config === undefined
          ? [{ path: 'adapter_model.safetensors', size: 10 }]
          : [
              {
                path: 'adapter_config.json',
                size: Buffer.byteLength(config),
                read: async (offset: number, length: number) =>
                  Buffer.from(config).subarray(offset, offset + length),
              },
            ],
    });
    expect(await readLoraRank(view('{"peft_type":"LORA","r":12,"lora_alpha":24}'), 'llm')).toBe(12);
    expect(await readLoraRank(view('{"r":8,"rank_pattern":{"q_proj":32,"v_proj":16}}'), 'llm')).toBe(32);
    await expect(readLoraRank(view(undefined), 'llm')).rejects.toMatchObject({
      code: 'adapter-config-invalid',
      message: 'Service llm serves adapter sql-lora, which has no adapter_config.json.',
    });
    await expect(readLoraRank(view('{"r":0}'), 'llm')).rejects.toThrow(/no rank/);
  });
});
