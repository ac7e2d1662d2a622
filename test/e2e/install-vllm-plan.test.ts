/**
 * What install would start for a vLLM service, read from a real bundle: two vLLM-like
 * images (umoci-built, `CUDA_VERSION` 13.0.2 and 12.9.1 in their configs, pushed to the
 * local registry and bundled from it) and the published Apertus-8B config. The flags come
 * from the fit on the captured H100s, the image from their driver. No GPU runs here: this
 * is the decision install takes before it starts the container.
 */
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VllmServiceSpec } from '../../src/core/layout/types.js';
import { prepareBundle } from '../../src/core/operations/prepare-bundle.js';
import { type ContainerHost, renderContainerRun } from '../../src/core/runtimes/container/engine.js';
import { planLaunches } from '../../src/core/runtimes/launch-plan.js';
import { vllmRunSpec } from '../../src/core/runtimes/vllm/vllm.js';
import { gpuFixture } from '../fixtures/gpu/gpu-fixture.js';
import {
  buildTestImages,
  registryRequirement,
  startRegistry,
  type TestRegistry,
} from '../helpers/registry.js';
import { runCli } from '../helpers/run-cli.js';

const requirement = registryRequirement();

const PODMAN: ContainerHost = {
  engine: 'podman',
  program: '/usr/bin/podman',
  version: 'podman version 4.9.3',
  gpu: 'cdi',
  cdiSpecs: ['/var/run/cdi/nvidia.yaml'],
  systemd: true,
};

describe.skipIf(!requirement.ok)(`vLLM launch decided from a bundle ${requirement.why}`, () => {
  let work: string;
  let registry: TestRegistry;
  let bundlePath: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-vllm-plan-'));
    const images = await buildTestImages(path.join(work, 'images'));
    for (const [tag, cuda] of [
      ['cu130', '13.0.2'],
      ['cu129', '12.9.1'],
    ] as const) {
      await execa('umoci', [
        'config',
        '--image',
        `${images.layout}:${images.runnable.tag}`,
        '--tag',
        tag,
        '--config.env',
        `CUDA_VERSION=${cuda}`,
      ]);
    }
    registry = await startRegistry({ dir: path.join(work, 'registry') });
    await registry.push(images.layout, 'cu130', 'vllm/vllm-openai:v0.20.0');
    await registry.push(images.layout, 'cu129', 'vllm/vllm-openai:v0.20.0-cu129');

    const recipe = path.join(work, 'recipe');
    await mkdir(path.join(recipe, 'model'), { recursive: true });
    await cp(
      'test/fixtures/models/apertus-8b-instruct-2509/config.json',
      path.join(recipe, 'model', 'config.json'),
    );
    // What vLLM reads at start besides the weights: bundle refuses a model without them.
    for (const [name, content] of [
      ['tokenizer.json', '{"version":"1.0"}\n'],
      ['tokenizer_config.json', '{"eos_token":"</s>"}\n'],
      ['chat_template.jinja', '{% for m in messages %}{{ m.content }}{% endfor %}\n'],
      ['generation_config.json', '{"eos_token_id":[2,68,72]}\n'],
    ]) {
      await writeFile(path.join(recipe, 'model', name as string), content as string);
    }
    await writeFile(
      path.join(recipe, 'apertus.yaml'),
      [
        'apiVersion: apertus.dev/v1',
        'kind: Bundle',
        'metadata: { name: vllm-plan, version: 1.0.0 }',
        'components:',
        '  - { name: model, kind: model, source: "file:model" }',
        `  - { name: vllm-cu130, kind: image, source: "oci:${registry.host}/vllm/vllm-openai:v0.20.0", insecure: true }`,
        `  - { name: vllm-cu129, kind: image, source: "oci:${registry.host}/vllm/vllm-openai:v0.20.0-cu129", insecure: true }`,
        'services:',
        '  - name: llm',
        '    runtime: vllm',
        '    image: vllm-cu130',
        '    alternativeImages: [vllm-cu129]',
        '    model: model',
        '    modelId: apertus-8b',
        '    port: 18000',
        '    trustRemoteCode: false',
        '',
      ].join('\n'),
    );
    const bundled = await runCli([
      'bundle',
      recipe,
      '-o',
      path.join(work, 'out'),
      '--cache-dir',
      path.join(work, 'cache'),
      '--no-cli',
      '--json',
    ]);
    expect(bundled.exitCode, bundled.stdout).toBe(0);
    bundlePath = JSON.parse(bundled.stdout).path;
  });

  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** As install decides it: the bundle prepared once (its workloads and image configs), the host's GPUs. */
  async function launch(fixture: string): Promise<VllmServiceSpec> {
    const prepared = await prepareBundle(bundlePath);
    try {
      const [service] = planLaunches(prepared.bundle.config.services, {
        gpu: gpuFixture(fixture),
        workloads: prepared.subject.workloads,
        imageConfigs: prepared.imageConfigs,
      });
      if (service?.runtime !== 'vllm') throw new Error('no vllm service');
      return service;
    } finally {
      await prepared.close();
    }
  }

  it('one H100 on driver 580: the CUDA 13.0 image, TP 1 and the model’s full context from the fit', async () => {
    const service = await launch('h100-80gb-hbm3');
    expect(service.image.component).toBe('vllm-cu130');
    expect(service.chosen).toMatchObject({ image: 'driver', tensorParallelSize: 'fit', maxModelLen: 'fit' });
    expect(service.tensorParallelSize).toBe(1);
    expect(service.maxModelLen).toBe(65_536);
  });

  it('an H100 on driver 575: the -cu129 image the driver can run', async () => {
    const service = await launch('h100-driver-575');
    expect(service.image.component).toBe('vllm-cu129');
  });

  it('runs the bundled service offline, by absolute path, with persistent caches under the install root', async () => {
    const service = await launch('h100-80gb-hbm3');
    const root = '/var/lib/apertus';
    const argv = renderContainerRun(vllmRunSpec(service, `${root}/releases/vllm-plan/1.0.0`, root), PODMAN);
    const env = new Map(
      argv.flatMap((arg, i) => (argv[i - 1] === '--env' ? [arg.split('=') as [string, string]] : [])),
    );
    for (const name of ['HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE', 'VLLM_NO_USAGE_STATS', 'DO_NOT_TRACK'])
      expect(env.get(name), name).toBe('1');
    // Every JIT cache (torch.compile under VLLM_CACHE_ROOT, Inductor, Triton) in the one writable mount.
    for (const name of ['VLLM_CACHE_ROOT', 'TRITON_CACHE_DIR', 'TORCHINDUCTOR_CACHE_DIR', 'XDG_CACHE_HOME'])
      expect(env.get(name), name).toMatch(/^\/var\/cache\/vllm(\/|$)/);
    expect(argv).toContain(`${root}/data/llm/cache:/var/cache/vllm:rw`);
    expect(argv).toContain(`${root}/releases/vllm-plan/1.0.0/model:/models/model:ro`);
    const serve = argv.indexOf('serve');
    expect(argv[serve + 1]).toBe('/models/model');
    expect(argv.slice(serve + 2, serve + 4)).toEqual(['--served-model-name', 'apertus-8b']);
    // trustRemoteCode: false in the recipe: the model's code is not run.
    expect(argv).not.toContain('--trust-remote-code');
  });

  it('a 24 GB L4: a shorter context that fits, from the same bundle', async () => {
    const service = await launch('l4-24gb');
    expect(service.tensorParallelSize).toBe(1);
    expect(service.maxModelLen).toBeGreaterThan(0);
    expect(service.maxModelLen).toBeLessThan(65_536);
  });
});
