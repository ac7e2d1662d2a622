import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ChecksReport } from '../../src/core/operations/check.js';
import { generateTinyModel } from '../../src/core/tiny-model/generate.js';
import { writeHfCache } from '../helpers/hf-cache.js';
import { writeHfRecipe } from '../helpers/hf-recipe.js';
import { type CliRun, runCli } from '../helpers/run-cli.js';
import { type WatchedPort, watchPort } from '../helpers/watched-port.js';

const APERTUS_8B_DIR = path.resolve('test/fixtures/models/apertus-8b-instruct-2509');

let work: string;
let recipe: string;

/**
 * The CLI in-process with these environment variables. The check command reads the
 * hf: settings from the process environment, so they are set there too.
 */
async function run(argv: string[], env: Record<string, string> = {}): Promise<CliRun> {
  for (const [name, value] of Object.entries(env)) vi.stubEnv(name, value);
  return runCli(argv, { env: { CI: 'true', ...env } });
}

afterEach(() => {
  vi.unstubAllEnvs();
});

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'apertus-check-cli-'));
  recipe = path.join(work, 'recipe');
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
      '  - { name: llm, runtime: llamacpp, model: model/tiny-llama.gguf, modelId: tiny, port: 18089, threads: 1, contextSize: 256 }',
    ].join('\n'),
  );
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('apertus check (in-process)', () => {
  it('--json prints one JSON report; a GPU model on this GPU-less machine fails with exit 1', async () => {
    const { stdout, exitCode } = await run([
      'check',
      '--local',
      '--root',
      path.join(work, 'root'),
      '--model',
      APERTUS_8B_DIR,
      '--json',
    ]);
    expect(exitCode).toBe(1);
    const report = JSON.parse(stdout) as ChecksReport;
    expect(report).toMatchObject({
      ok: false,
      status: 'fail',
      subject: { kind: 'model', workloads: ['apertus-8b-instruct-2509/config.json (vLLM)'] },
    });
    const [host] = report.hosts;
    expect(host?.host).toBe('local');
    const ids = host?.results.map((r) => r.id) ?? [];
    expect(ids).toEqual(
      expect.arrayContaining(['os', 'arch', 'libc', 'clock', 'install-root', 'disk', 'gpu', 'fit']),
    );
    const gpu = host?.results.find((r) => r.id === 'gpu');
    // The probe found no usable GPU, and the result passes on its reason with the fix.
    const facts = host?.facts?.gpu;
    expect(facts?.state).not.toBe('ok');
    expect(gpu).toMatchObject({
      status: 'fail',
      detail: facts?.state === 'ok' ? 'a GPU' : facts?.detail,
      hint: expect.stringContaining('nvidia-smi'),
    });
    expect(host?.fit[0]?.report.model.kvBytesPerToken).toBe(131072);
  });

  it('prints a table per host: status, check, detail and hint', async () => {
    const { stdout, exitCode } = await run([
      'check',
      '--local',
      '--root',
      path.join(work, 'root'),
      '--recipe',
      recipe,
    ]);
    expect(exitCode).toBe(0);
    expect(stdout).toContain(`Checked against recipe ${path.join(recipe, 'apertus.yaml')}`);
    expect(stdout).toMatch(/^local \(local\): (ok|WARN)$/m);
    expect(stdout).toMatch(/^ {2}STATUS {2}CHECK +DETAIL$/m);
    expect(stdout).toMatch(/^ {2}ok {6}ports +llm: port 18089 \(llm\) is free$/m);
    expect(stdout).toMatch(/^ {2}ok {6}gpu {16}no NVIDIA driver/m);
    expect(stdout).toContain("not needed: the recipe's models run on CPU (llamacpp)");
    expect(stdout).toMatch(/^1 host: [01] ok, [01] with warnings, 0 failed$/m);
  });

  it('refuses a missing or doubled target, and malformed numbers, as usage errors', async () => {
    for (const argv of [
      ['check'],
      ['check', '--local', '--host', 'root@10.0.0.5'],
      ['check', '--local', '--max-model-len', 'lots'],
      ['check', '--local', '--gpu-memory-utilization', '1.5'],
      ['check', '--local', '--image-cuda', 'thirteen'],
      ['check', '--local', '--bundle', 'x.tar', '--model', APERTUS_8B_DIR],
    ]) {
      const { exitCode } = await run(argv);
      expect(exitCode, argv.join(' ')).toBe(2);
    }
  });

  it('an inventory host that cannot be reached is a failed "connect" result, not a crash', async () => {
    const inventory = path.join(work, 'hosts.yaml');
    await writeFile(
      inventory,
      [
        'apiVersion: apertus.dev/v1',
        'kind: Inventory',
        'defaults:',
        `  knownHosts: ${path.join(work, 'known_hosts')}`,
        'hosts:',
        '  - { name: closed-port, address: root@127.0.0.1:1 }',
      ].join('\n'),
    );
    await writeFile(path.join(work, 'known_hosts'), '');
    const { stdout, exitCode } = await run(['check', '--inventory', inventory, '--json']);
    expect(exitCode).toBe(1);
    const report = JSON.parse(stdout) as ChecksReport;
    expect(report.hosts).toHaveLength(1);
    expect(report.hosts[0]).toMatchObject({
      host: 'closed-port',
      status: 'fail',
      results: [{ id: 'connect', status: 'fail' }],
    });
  });
});

describe('apertus check --recipe with hf: sources', () => {
  let nowhere: WatchedPort;

  beforeAll(async () => {
    nowhere = await watchPort();
  });

  afterAll(async () => {
    await nowhere.close();
  });

  it.each([
    ['apertus-8b-rag', 'qdrant (oci:docker.io/qdrant/qdrant:v1.15.1, sized when bundled)'],
    ['apertus-8b-pgvector', 'pgvector (oci:docker.io/pgvector/pgvector:0.8.1-pg17, sized when bundled)'],
  ])(
    'bundles/%s against an HF cache holding only the config.json files: both models judged, nothing fetched',
    async (recipe, storeImage) => {
      const hfHome = path.join(work, `${recipe}-hf-home`);
      const configs = {
        model: path.join(APERTUS_8B_DIR, 'config.json'),
        'embedding-model': path.resolve('test/fixtures/models/bge-m3/config.json'),
      };
      await writeHfCache(hfHome, {
        id: 'swiss-ai/Apertus-8B-Instruct-2509',
        files: [{ path: 'config.json', content: await readFile(configs.model) }],
      });
      await writeHfCache(hfHome, {
        id: 'BAAI/bge-m3',
        files: [{ path: 'config.json', content: await readFile(configs['embedding-model']) }],
      });
      const before = nowhere.connections();
      const { stdout, exitCode } = await run(
        ['check', '--recipe', `bundles/${recipe}`, '--local', '--root', path.join(work, 'root'), '--json'],
        { HF_HOME: hfHome, HF_HUB_OFFLINE: '1', HF_ENDPOINT: nowhere.url },
      );
      expect(nowhere.connections()).toBe(before);
      const report = JSON.parse(stdout) as ChecksReport;
      expect(report.subject).toEqual({
        kind: 'recipe',
        name: path.resolve(`bundles/${recipe}/apertus.yaml`),
        workloads: ['model/config.json (vLLM)', 'embedding-model/config.json (vLLM)'],
      });
      const [host] = report.hosts;
      // Each model's KV cache per token, from its own config: 2 (K and V) x layers x KV heads x head size x 2 bytes.
      const kvPerToken = async (file: string) => {
        const c = JSON.parse(await readFile(file, 'utf8')) as Record<string, number>;
        const kvHeads = c.num_key_value_heads ?? (c.num_attention_heads as number);
        return (
          2 *
          (c.num_hidden_layers as number) *
          kvHeads *
          ((c.hidden_size as number) / (c.num_attention_heads as number)) *
          2
        );
      };
      expect(host?.fit.map((f) => [f.workload, f.report.model.kvBytesPerToken])).toEqual([
        ['model/config.json (vLLM)', await kvPerToken(configs.model)],
        ['embedding-model/config.json (vLLM)', await kvPerToken(configs['embedding-model'])],
      ]);
      // The images are sized only once bundled, and the disk detail says so.
      const disk = host?.results.find((r) => r.id === 'disk');
      expect(disk?.detail).toContain(
        `not counted: vllm (oci:docker.io/vllm/vllm-openai:v0.20.0, sized when bundled), ${storeImage}`,
      );
      expect(host?.results.find((r) => r.id === 'container-runtime')?.detail).not.toContain('not needed');
      // No GPU here: the GPU models fail the check, as a report (exit 1), not as an error.
      expect(host?.facts?.gpu.state).not.toBe('ok');
      expect(exitCode).toBe(1);
    },
  );

  it('HF_HUB_OFFLINE=1 with the model missing from the cache: a usage error naming the repo and the fix (exit 2)', async () => {
    const recipeDir = path.join(work, 'hf-recipe');
    await mkdir(recipeDir, { recursive: true });
    await writeHfRecipe(recipeDir, 'swiss-ai/Apertus-8B-Instruct-2509');
    const hfHome = path.join(work, 'empty-hf-home');
    const { stdout, exitCode } = await run(
      ['check', '--recipe', recipeDir, '--local', '--root', path.join(work, 'root'), '--json'],
      { HF_HOME: hfHome, HF_HUB_OFFLINE: '1', HF_ENDPOINT: nowhere.url },
    );
    expect(exitCode).toBe(2);
    expect(JSON.parse(stdout)).toMatchObject({
      ok: false,
      error: {
        code: 'hf-not-cached',
        message: `HF_HUB_OFFLINE is set, and the Hugging Face cache ${path.join(hfHome, 'hub')} does not know revision main of swiss-ai/Apertus-8B-Instruct-2509.`,
        hint: expect.stringContaining('hf download swiss-ai/Apertus-8B-Instruct-2509 --revision main'),
      },
    });
  });
});
