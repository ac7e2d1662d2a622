/**
 * `apertus bundle` refuses a vLLM model that would reach for the network at start, before
 * it writes anything, naming the missing file and the fix (offline readiness, issue 12);
 * a ready model bundles with its warnings kept in the result, and `check --bundle` judges
 * the written bundle the same way. Real HTTP to the fake Hub, a real registry for the vLLM
 * image, real files.
 */
import { existsSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalTransport } from '../../src/core/host/local-transport.js';
import { openBundle } from '../../src/core/layout/bundle-reader.js';
import { loadBundle } from '../../src/core/layout/load-bundle.js';
import { loadCheckSubject } from '../../src/core/operations/check-subject.js';
import { planInstall } from '../../src/core/operations/install-plan.js';
import { offlineCheckResults } from '../../src/core/operations/offline-gate.js';
import { vllmRunSpec } from '../../src/core/runtimes/vllm/vllm.js';
import { hostLayout } from '../../src/core/target/layout.js';
import { stageRelease } from '../../src/core/target/stage.js';
import { apertusLikeRepo, type FakeHub, startFakeHub } from '../helpers/fake-hub.js';
import { writeHfRecipe } from '../helpers/hf-recipe.js';
import {
  buildTestImages,
  registryRequirement,
  startRegistry,
  type TestRegistry,
} from '../helpers/registry.js';
import { runCli } from '../helpers/run-cli.js';

const requirement = registryRequirement();
const INSTRUCT = 'swiss-ai/Apertus-8B-Instruct-2509';
const REMOTE_CODE = 'swiss-ai/Apertus-8B-Instruct-remote';
const LORA = 'swiss-ai/Apertus-8B-sql-lora';
const TEMPLATE = '{% for m in messages %}{{ m.content }}{% endfor %}\n';

describe.skipIf(!requirement.ok)(`bundle judges offline readiness ${requirement.why}`, () => {
  let work: string;
  let hub: FakeHub;
  let registry: TestRegistry;
  let n = 0;
  /** The commit the REMOTE_CODE repo resolves to: what an adapter of it pins. */
  let baseCommit: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-bundle-offline-'));
    hub = await startFakeHub();
    // The Apertus-like repo as published in tests: an Instruct model without a chat template.
    hub.addRepo(apertusLikeRepo(INSTRUCT));
    const withCode = apertusLikeRepo(REMOTE_CODE);
    withCode.files = withCode.files.map((f) =>
      f.path === 'config.json'
        ? {
            ...f,
            content: JSON.stringify({
              ...JSON.parse(f.content.toString()),
              auto_map: { AutoModelForCausalLM: 'modeling_apertus.ApertusForCausalLM' },
            }),
          }
        : f,
    );
    withCode.files.push(
      { path: 'chat_template.jinja', content: TEMPLATE },
      { path: 'modeling_apertus.py', content: 'class ApertusForCausalLM: pass\n' },
    );
    baseCommit = hub.addRepo(withCode).sha;
    // A PEFT LoRA of it, as save_pretrained writes one: its config names its rank.
    hub.addRepo({
      id: LORA,
      files: [
        {
          path: 'adapter_config.json',
          content: JSON.stringify({
            peft_type: 'LORA',
            r: 12,
            lora_alpha: 24,
            base_model_name_or_path: REMOTE_CODE,
          }),
        },
        { path: 'adapter_model.safetensors', content: Buffer.alloc(4096, 7), lfs: true },
      ],
    });
    registry = await startRegistry({ dir: path.join(work, 'registry') });
    const images = await buildTestImages(path.join(work, 'images'));
    await registry.push(images.layout, 'runnable', 'vllm/vllm-openai:v0.20.0');
  }, 120_000);

  afterAll(async () => {
    await hub?.close();
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** A recipe serving `repo` on vLLM; `service` lines go under the service entry. */
  async function bundleOf(
    repo: string,
    service: string[] = [],
    exclude: string[] = [],
    json = true,
    components: string[] = [],
  ) {
    const dir = path.join(work, `recipe-${n++}`);
    await mkdir(dir, { recursive: true });
    await writeHfRecipe(dir, repo, { exclude: ['README.md', '.gitattributes', 'assets/*', ...exclude] });
    await appendFile(
      path.join(dir, 'apertus.yaml'),
      [
        ...components,
        '  - name: vllm',
        '    kind: image',
        `    source: oci:${registry.host}/vllm/vllm-openai:v0.20.0`,
        '    insecure: true',
        'services:',
        '  - name: llm',
        '    runtime: vllm',
        '    image: vllm',
        '    model: model',
        `    modelId: ${repo}`,
        '    port: 18000',
        ...service.map((line) => `    ${line}`),
        '',
      ].join('\n'),
    );
    const out = path.join(dir, 'out');
    const run = await runCli(
      [
        'bundle',
        dir,
        '-o',
        out,
        '--cache-dir',
        path.join(work, 'cache'),
        '--no-cli',
        ...(json ? ['--json'] : []),
      ],
      { env: { CI: 'true', HF_ENDPOINT: hub.url, HF_HOME: path.join(work, 'hf-home') } },
    );
    return { ...run, out };
  }

  it('refuses an instruct model without a chat template, naming the file and the fix, and writes nothing', async () => {
    const run = await bundleOf(INSTRUCT);
    expect(run.exitCode, run.stdout + run.stderr).toBe(2);
    const error = JSON.parse(run.stdout).error;
    expect(error.code).toBe('bundle-not-offline-ready');
    expect(error.message).toContain('service llm, model model: missing chat_template.jinja');
    expect(error.hint).toContain('--chat-template /models/model/');
    expect(existsSync(run.out)).toBe(false);
  }, 60_000);

  it('refuses auto_map without trustRemoteCode; with it, renders --trust-remote-code and stages an HF cache', async () => {
    const refused = await bundleOf(REMOTE_CODE);
    expect(refused.exitCode, refused.stdout + refused.stderr).toBe(2);
    const error = JSON.parse(refused.stdout).error;
    expect(error.message).toContain('auto_map (modeling_apertus.ApertusForCausalLM)');
    expect(error.hint).toContain('trustRemoteCode: true');
    expect(existsSync(refused.out)).toBe(false);

    const written = await bundleOf(REMOTE_CODE, ['trustRemoteCode: true']);
    expect(written.exitCode, written.stdout + written.stderr).toBe(0);
    const result = JSON.parse(written.stdout);
    // The Apertus-like repo carries generation_config.json and tokenizer files: nothing to warn about.
    expect(result.offline).toEqual([{ service: 'llm', component: 'model', status: 'ok', findings: [] }]);

    // check --bundle judges the written bundle the same way: one result per served model.
    const subject = await loadCheckSubject({ bundle: result.path });
    expect(offlineCheckResults(subject?.offline ?? [])).toEqual([
      expect.objectContaining({ id: 'offline-readiness', status: 'ok', subject: 'llm/model' }),
    ]);
    expect(subject?.offline?.[0]?.service).toBe('llm');

    // The service the bundle records runs the model's code, by its explicit opt-in.
    const reader = await openBundle(result.path);
    const bundle = await loadBundle(reader).finally(() => reader.close());
    const [llm] = bundle.config.services;
    if (llm?.runtime !== 'vllm') throw new Error('no vllm service');
    expect(llm.trustRemoteCode).toBe(true);
    const spec = vllmRunSpec(llm, '/var/lib/apertus/releases/x/1', '/var/lib/apertus');
    expect(spec.args).toContain('--trust-remote-code');

    // Staged on a host, the model is also a Hugging Face cache: hard links to the same
    // blobs under models--ORG--NAME/snapshots/SHA, and refs/main naming the commit.
    const root = path.join(work, 'host');
    await mkdir(root, { recursive: true });
    await execa('tar', ['-xf', result.path, '-C', root, 'blobs']);
    const layout = hostLayout(root);
    const plan = planInstall(
      {
        config: bundle.config,
        manifestDigest: bundle.manifestDigest,
        components: bundle.components,
        blobs: bundle.blobs,
      },
      {
        root: { blobs: new Map(), partial: new Map(), current: null },
        disks: [{ availableBytes: 1e12 }],
      },
      layout,
    );
    const staged = await stageRelease(createLocalTransport(), layout, plan, bundle.config.services, {
      hashTool: 'sha256sum',
      check: [],
      blobs: [...bundle.blobs.keys()],
    });
    expect(staged).toEqual({ created: true, corrupt: [] });
    const revision = bundle.config.components.find((c) => c.name === 'model')?.provenance.revision;
    expect(revision).toMatch(/^[0-9a-f]{40}$/);
    const repoDir = path.join(plan.release.dir, 'hf-cache', 'models--swiss-ai--Apertus-8B-Instruct-remote');
    expect(await readFile(path.join(repoDir, 'refs', 'main'), 'utf8')).toBe(revision);
    const snapshot = path.join(repoDir, 'snapshots', revision as string);
    const modelDir = path.join(plan.release.dir, 'model');
    const served = (await readdir(modelDir)).sort();
    expect((await readdir(snapshot)).sort()).toEqual(served);
    expect(served).toContain('modeling_apertus.py');
    for (const file of served) {
      expect((await stat(path.join(snapshot, file))).ino, file).toBe(
        (await stat(path.join(modelDir, file))).ino,
      );
    }
  }, 60_000);

  it('bundles a model that lacks generation_config.json, keeping the warning in the result and the text', async () => {
    const run = await bundleOf(REMOTE_CODE, ['trustRemoteCode: false'], ['generation_config.json']);
    expect(run.exitCode, run.stdout + run.stderr).toBe(0);
    const [verdict] = JSON.parse(run.stdout).offline;
    expect(verdict).toMatchObject({ service: 'llm', status: 'warn' });
    expect(verdict.findings).toEqual([
      expect.objectContaining({ rule: 'generation-config', file: 'generation_config.json' }),
    ]);
    expect(verdict.findings[0].fix).toContain('"--generation-config", "vllm"');

    const text = await bundleOf(REMOTE_CODE, ['trustRemoteCode: false'], ['generation_config.json'], false);
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stdout).toContain('offline    warn llm/model: generation_config.json:');

    // Pinning vLLM's own defaults is the other fix.
    const pinned = await bundleOf(
      REMOTE_CODE,
      ['trustRemoteCode: false', 'extraArgs: ["--generation-config", "vllm"]'],
      ['generation_config.json'],
    );
    expect(JSON.parse(pinned.stdout).offline[0].status).toBe('ok');
  }, 90_000);

  it('serves a Hub LoRA pinned to its base commit: its rank in the bundle, the LoRA flags rendered; another commit is refused before any download', async () => {
    const adapter = (commit: string) => [
      '  - name: sql-lora',
      '    kind: adapter',
      `    source: hf:${LORA}@main`,
      '    base:',
      '      component: model',
      `      revision: ${commit}`,
    ];
    const serve = ['trustRemoteCode: true', 'adapters:', '  - adapter: sql-lora', '    modelId: apertus-sql'];
    hub.resetCounters();
    const wrong = 'f'.repeat(40);
    const refused = await bundleOf(REMOTE_CODE, serve, [], true, adapter(wrong));
    expect(refused.exitCode, refused.stdout + refused.stderr).toBe(2);
    const error = JSON.parse(refused.stdout).error;
    expect(error.code).toBe('adapter-base-mismatch');
    expect(error.message).toBe(
      `Adapter sql-lora is bound to base model model at revision ${wrong}, but the recipe's model differs: it is at revision ${baseCommit}, not ${wrong}.`,
    );
    // Only metadata was read (the listing, the model card): no weights of either.
    expect(hub.requests.filter((r) => r.url.endsWith('.safetensors'))).toEqual([]);
    expect(existsSync(refused.out)).toBe(false);

    const written = await bundleOf(REMOTE_CODE, serve, [], true, adapter(baseCommit));
    expect(written.exitCode, written.stdout + written.stderr).toBe(0);
    const reader = await openBundle(JSON.parse(written.stdout).path);
    const bundle = await loadBundle(reader).finally(() => reader.close());
    expect(bundle.config.components.find((c) => c.name === 'sql-lora')).toMatchObject({
      kind: 'adapter',
      base: { component: 'model', revision: baseCommit },
      provenance: { source: expect.stringMatching(new RegExp(`^hf://${LORA}@[0-9a-f]{40}$`)) },
    });
    const [llm] = bundle.config.services;
    if (llm?.runtime !== 'vllm') throw new Error('no vllm service');
    expect(llm.adapters).toEqual([{ component: 'sql-lora', id: 'apertus-sql', rank: 12 }]);
    const args = vllmRunSpec(llm, '/var/lib/apertus/releases/x/1', '/var/lib/apertus').args;
    expect(args.slice(args.indexOf('--enable-lora'))).toEqual([
      '--enable-lora',
      '--max-lora-rank',
      '16',
      '--lora-modules',
      'apertus-sql=/models/sql-lora',
    ]);
  }, 60_000);
});
