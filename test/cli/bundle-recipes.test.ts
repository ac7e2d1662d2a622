/**
 * The shipped GPU recipes (issue 3, point 7): bundles/apertus-8b-rag and bundles/apertus-70b
 * validate, their services render into the vLLM / Qdrant containers and units a host would
 * run, and `bundle --dry-run --json` on the 8B recipe resolves every component against a
 * fake Hugging Face Hub (the documented API) and a real registry on 127.0.0.1, standing in
 * for huggingface.co and Docker Hub, which this machine cannot reach.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ContainerServiceSpec, VllmServiceSpec } from '../../src/core/layout/types.js';
import {
  type ContainerHost,
  renderContainerRun,
  renderContainerUnit,
} from '../../src/core/runtimes/container/engine.js';
import { containerRunSpec } from '../../src/core/runtimes/container/service.js';
import type { GatewayServiceSpec } from '../../src/core/runtimes/gateway/spec.js';
import { resolveServices } from '../../src/core/runtimes/resolve-services.js';
import { vllmRunSpec } from '../../src/core/runtimes/vllm/vllm.js';
import { loadRecipe } from '../../src/core/spec/load-recipe.js';
import { recipeSchema } from '../../src/core/spec/recipe-schema.js';
import { apertusLikeRepo, type FakeHub, safetensorsFile, startFakeHub } from '../helpers/fake-hub.js';
import {
  buildTestImages,
  registryRequirement,
  startRegistry,
  type TestRegistry,
} from '../helpers/registry.js';
import { runCli } from '../helpers/run-cli.js';

const host: ContainerHost = {
  engine: 'podman',
  program: '/usr/bin/podman',
  version: 'podman version 4.9.3',
  gpu: 'cdi',
  cdiSpecs: ['/var/run/cdi/nvidia.yaml'],
  systemd: true,
};

async function resolved(dir: string) {
  const loaded = await loadRecipe(dir);
  const services = resolveServices(loaded.recipe, loaded.file, () => null);
  const byName = new Map(
    services
      .filter(
        (s): s is VllmServiceSpec | ContainerServiceSpec => s.runtime === 'vllm' || s.runtime === 'container',
      )
      .map((s) => [s.name, s]),
  );
  return { loaded, byName, services };
}

/** The container a vllm or container service runs as. */
function runSpecOf(spec: VllmServiceSpec | ContainerServiceSpec, releaseDir: string, root: string) {
  return spec.runtime === 'vllm'
    ? vllmRunSpec(spec, releaseDir, root)
    : containerRunSpec(spec, releaseDir, root);
}

const value = (argv: string[], flag: string) => argv[argv.indexOf(flag) + 1];

describe('the shipped GPU recipes', () => {
  it('apertus-8b-rag: Apertus-8B and bge-m3 on vLLM, Qdrant, and the RAG service over them', async () => {
    const { loaded, byName, services } = await resolved('bundles/apertus-8b-rag');
    expect(loaded.recipe.components.map((c) => [c.name, c.kind, c.source])).toEqual([
      ['model', 'model', 'hf:swiss-ai/Apertus-8B-Instruct-2509'],
      ['embedding-model', 'model', 'hf:BAAI/bge-m3'],
      ['vllm', 'image', 'oci:docker.io/vllm/vllm-openai:v0.20.0'],
      ['qdrant', 'image', 'oci:docker.io/qdrant/qdrant:v1.15.1'],
    ]);
    expect(loaded.recipe.services.map((s) => s.runtime)).toEqual([
      'vllm',
      'vllm',
      'container',
      'rag',
      'gateway',
    ]);

    const llm = byName.get('llm') as VllmServiceSpec;
    expect(llm.image.reference).toBe('docker.io/vllm/vllm-openai:v0.20.0');
    const llmArgv = renderContainerRun(
      vllmRunSpec(llm, '/var/lib/apertus/releases/x/1', '/var/lib/apertus'),
      host,
    );
    expect(value(llmArgv, '--entrypoint')).toBe('vllm');
    expect(llmArgv).toContain('/var/lib/apertus/releases/x/1/model:/models/model:ro');
    expect(value(llmArgv, 'serve')).toBe('/models/model');
    expect(value(llmArgv, '--served-model-name')).toBe('swiss-ai/Apertus-8B-Instruct-2509');
    expect(value(llmArgv, '--publish')).toBe('127.0.0.1:18000:8000/tcp');
    expect(llmArgv).toContain('HF_HUB_OFFLINE=1');

    const embed = byName.get('embed') as VllmServiceSpec;
    const embedArgv = renderContainerRun(vllmRunSpec(embed, '/r', '/var/lib/apertus'), host);
    expect(value(embedArgv, '--runner')).toBe('pooling');
    expect(value(embedArgv, '--max-model-len')).toBe('8192');
    // Two instances share one GPU: their per-instance limits must leave room for each other.
    const utilisation =
      Number(value(llmArgv, '--gpu-memory-utilization')) +
      Number(value(embedArgv, '--gpu-memory-utilization'));
    expect(utilisation).toBeLessThanOrEqual(0.92);

    const qdrant = byName.get('qdrant') as ContainerServiceSpec;
    const qdrantArgv = renderContainerRun(containerRunSpec(qdrant, '/r', '/var/lib/apertus'), host);
    expect(qdrantArgv).toContain('/var/lib/apertus/data/qdrant:/qdrant/storage:rw');
    expect(qdrantArgv).not.toContain('--device');
    expect(qdrant.healthPath).toBe('/healthz');
    expect(loaded.recipe.verify.embeddings?.dimension).toBe(1024);

    // The gateway routes to both models and the RAG service, not to Qdrant.
    const gateway = services.find((s) => s.name === 'gateway') as GatewayServiceSpec;
    expect(gateway.upstreams.map((u) => [u.model, u.url, u.embeddings])).toEqual([
      ['swiss-ai/Apertus-8B-Instruct-2509', 'http://127.0.0.1:18000', false],
      ['BAAI/bge-m3', 'http://127.0.0.1:18001', true],
    ]);
    expect(gateway.rags).toEqual([{ service: 'rag', collection: 'rag', url: 'http://127.0.0.1:18090' }]);
    expect(gateway.dependsOn).toEqual(['llm', 'embed', 'rag']);
  });

  it('apertus-70b: vLLM with tensor parallelism 4 and host IPC', async () => {
    const { byName } = await resolved('bundles/apertus-70b');
    const llm = byName.get('llm') as VllmServiceSpec;
    const argv = renderContainerRun(vllmRunSpec(llm, '/r', '/var/lib/apertus'), host);
    expect(value(argv, '--tensor-parallel-size')).toBe('4');
    expect(value(argv, '--max-model-len')).toBe('65536');
    expect(value(argv, '--ipc')).toBe('host');
  });

  it('refuses a vllm service whose image or model is not a component of that kind, and rag over a plain container', () => {
    const base = {
      apiVersion: 'apertus.dev/v1',
      kind: 'Bundle',
      metadata: { name: 'x', version: '1.0.0' },
      components: [
        { name: 'model', kind: 'model', source: 'hf:swiss-ai/Apertus-8B-Instruct-2509' },
        { name: 'vllm', kind: 'image', source: 'oci:docker.io/vllm/vllm-openai:v0.20.0' },
      ],
    };
    const vllm = { name: 'llm', runtime: 'vllm', image: 'vllm', model: 'model', modelId: 'm', port: 18000 };
    expect(recipeSchema.safeParse({ ...base, services: [vllm] }).success).toBe(true);
    const paths = (services: unknown[]) => {
      const result = recipeSchema.safeParse({ ...base, services });
      return result.success ? [] : result.error.issues.map((i) => i.path.join('.'));
    };
    expect(paths([{ ...vllm, image: 'model' }])).toEqual(['services.0.image']);
    expect(paths([{ ...vllm, model: 'vllm' }])).toEqual(['services.0.model']);
    expect(
      paths([
        { name: 'db', runtime: 'container', image: 'vllm', port: 6333, containerPort: 6333 },
        { name: 'rag', runtime: 'rag', port: 18090, chat: 'db', dimension: 4 },
      ]),
    ).toEqual(['services.1.chat']);
  });

  it.skipIf(!existsSync('/usr/bin/systemd-analyze') || !existsSync('/usr/bin/podman'))(
    'every container service of both recipes renders a unit systemd-analyze accepts',
    async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'apertus-recipe-units-'));
      try {
        for (const recipe of ['bundles/apertus-8b-rag', 'bundles/apertus-70b']) {
          const { byName } = await resolved(recipe);
          for (const spec of byName.values()) {
            const file = path.join(dir, `apertus-${spec.name}.service`);
            await writeFile(file, renderContainerUnit(runSpecOf(spec, '/r', '/var/lib/apertus'), host));
            const result = await execa('systemd-analyze', ['verify', file], { reject: false });
            expect({ recipe, service: spec.name, exitCode: result.exitCode, stderr: result.stderr }).toEqual({
              recipe,
              service: spec.name,
              exitCode: 0,
              stderr: '',
            });
          }
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
});

const registryNeeds = registryRequirement();

describe.skipIf(!registryNeeds.ok)(
  `apertus-8b-rag --dry-run against local stand-ins ${registryNeeds.why}`,
  () => {
    let work: string;
    let hub: FakeHub;
    let registry: TestRegistry;

    beforeAll(async () => {
      work = await mkdtemp(path.join(os.tmpdir(), 'apertus-recipe-dry-run-'));
      hub = await startFakeHub();
      hub.addRepo(apertusLikeRepo('swiss-ai/Apertus-8B-Instruct-2509'));
      hub.addRepo({
        id: 'BAAI/bge-m3',
        files: [
          { path: 'config.json', content: '{"architectures":["XLMRobertaModel"],"hidden_size":16}\n' },
          { path: 'tokenizer.json', content: '{"version":"1.0"}\n', lfs: true },
          {
            path: 'model.safetensors',
            content: safetensorsFile('bge/1', [
              { name: 'embeddings.word_embeddings.weight', shape: [64, 16] },
            ]),
            lfs: true,
          },
          { path: 'onnx/model.onnx', content: 'not served by vLLM\n', lfs: true },
        ],
      });
      registry = await startRegistry({ dir: path.join(work, 'registry') });
      const images = await buildTestImages(path.join(work, 'images'));
      await registry.push(images.layout, 'runnable', 'vllm/vllm-openai:v0.20.0');
      await registry.push(images.layout, 'big', 'qdrant/qdrant:v1.15.1');
    }, 120_000);

    afterAll(async () => {
      await hub?.close();
      await registry?.stop();
      if (work) await rm(work, { recursive: true, force: true });
    });

    it('resolves every component: pinned revisions and digests, files, bytes, and the disk it needs', async () => {
      // The shipped recipe, with Docker Hub swapped for the local registry; hf: sources stay as
      // they are and reach the fake Hub through HF_ENDPOINT.
      const recipeDir = path.join(work, 'apertus-8b-rag');
      await mkdir(recipeDir, { recursive: true });
      const shipped = await readFile('bundles/apertus-8b-rag/apertus.yaml', 'utf8');
      const local = shipped.replace(
        /^( +)source: oci:docker\.io\/(\S+)$/gm,
        (_line, indent: string, name: string) =>
          `${indent}source: oci:${registry.host}/${name}\n${indent}insecure: true`,
      );
      expect(local.match(/insecure: true/g)).toHaveLength(2);
      await writeFile(path.join(recipeDir, 'apertus.yaml'), local);

      const dry = await runCli(
        [
          'bundle',
          recipeDir,
          '-o',
          path.join(work, 'out'),
          '--cache-dir',
          path.join(work, 'cache'),
          '--dry-run',
          '--json',
        ],
        { env: { CI: 'true', HF_ENDPOINT: hub.url, HF_HOME: path.join(work, 'hf-home') } },
      );
      expect(dry.exitCode, dry.stdout + dry.stderr).toBe(0);
      const plan = JSON.parse(dry.stdout).plan;
      expect(plan).toMatchObject({ name: 'apertus-8b-rag', version: '0.1.0' });
      const byName = new Map<
        string,
        { kind: string; revision: string; files: number; bytes: number; source: string }
      >(plan.components.map((c: { name: string }) => [c.name, c]));
      expect([...byName.keys()].sort()).toEqual([
        'embedding-model',
        'model',
        'qdrant',
        // The RAG service runs on the Node runtime apertus adds itself.
        'runtime',
        'vllm',
      ]);
      expect(byName.get('model')).toMatchObject({
        kind: 'model',
        revision: expect.stringMatching(/^[0-9a-f]{40}$/),
      });
      expect(byName.get('embedding-model')).toMatchObject({ kind: 'model', files: 3 });
      for (const image of ['vllm', 'qdrant']) {
        expect(byName.get(image)).toMatchObject({
          kind: 'image',
          revision: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
        });
      }
      // The 2 MiB layer of the image standing in for Qdrant is counted.
      expect(byName.get('qdrant')?.bytes).toBeGreaterThan(2 << 20);
      const sum = plan.components.reduce((total: number, c: { bytes: number }) => total + c.bytes, 0);
      expect(plan.totalBytes).toBeGreaterThanOrEqual(sum);
      // Nothing was written: a dry run downloads no weights.
      expect(existsSync(path.join(work, 'out'))).toBe(false);
    }, 120_000);
  },
);
