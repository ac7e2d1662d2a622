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
import { planLaunches } from '../../src/core/runtimes/launch-plan.js';
import { gpuFixture } from '../fixtures/gpu/gpu-fixture.js';
import {
  buildTestImages,
  registryRequirement,
  startRegistry,
  type TestRegistry,
} from '../helpers/registry.js';
import { runCli } from '../helpers/run-cli.js';

const requirement = registryRequirement();

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

  it('a 24 GB L4: a shorter context that fits, from the same bundle', async () => {
    const service = await launch('l4-24gb');
    expect(service.tensorParallelSize).toBe(1);
    expect(service.maxModelLen).toBeGreaterThan(0);
    expect(service.maxModelLen).toBeLessThan(65_536);
  });
});
