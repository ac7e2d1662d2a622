/**
 * The CycloneDX 1.6 SBOM a bundle carries: written by `apertus bundle` for the demo recipe
 * (its runtime component holds the real node-llama-cpp closure), for an hf: model served by
 * a local server that speaks the Hub protocol, and for a wheelhouse; validated with
 * @cyclonedx/cyclonedx-library's strict 1.6 JSON schema, and read back with
 * `apertus inspect --sbom`.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Spec, Validation } from '@cyclonedx/cyclonedx-library';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBundleSbom } from '../../src/core/bundle/read-bundle-sbom.js';
import { writeBundle } from '../../src/core/bundle/write-bundle.js';
import { canonicalJsonBytes } from '../../src/core/layout/canonical-json.js';
import { sha256Digest } from '../../src/core/layout/manifests.js';
import { MEDIA_TYPE } from '../../src/core/layout/media-types.js';
import { PROJECT_ROOT } from '../../src/core/project-root.js';
import { collectRuntimeFiles } from '../../src/core/runtimes/runtime-files.js';
import { verifyBundle } from '../../src/core/verify/verify-bundle.js';
import { fixtureBytes, makeBundleFixture } from '../helpers/bundle-fixture.js';
import { apertusLikeRepo, type FakeHub, startFakeHub } from '../helpers/fake-hub.js';
import { runCli } from '../helpers/run-cli.js';

interface Component {
  type: string;
  'bom-ref': string;
  group?: string;
  name: string;
  version?: string;
  purl?: string;
  hashes?: Array<{ alg: string; content: string }>;
  licenses?: unknown[];
  components?: Component[];
  modelCard?: {
    modelParameters?: Record<string, string>;
    properties?: Array<{ name: string; value: string }>;
  };
  externalReferences?: Array<{ type: string; url: string }>;
  properties?: Array<{ name: string; value: string }>;
}
interface Bom {
  bomFormat: string;
  specVersion: string;
  serialNumber: string;
  metadata: { component: Component };
  components: Component[];
  dependencies: Array<{ ref: string; dependsOn: string[] }>;
}

const validator = new Validation.JsonStrictValidator(Spec.Version.v1dot6);

/** null when the document is a valid CycloneDX 1.6 BOM, else the schema errors. */
async function schemaErrors(json: string): Promise<unknown> {
  return validator.validate(json);
}

function flatten(components: Component[]): Component[] {
  return components.flatMap((component) => [component, ...flatten(component.components ?? [])]);
}

let work: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'apertus-sbom-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('the SBOM of the demo bundle', () => {
  let first: { path: string; sbom: string };

  it('is a valid CycloneDX 1.6 BOM, printed by inspect --sbom and byte-identical for the same recipe', async () => {
    const bundles: Array<{ path: string; sbom: string }> = [];
    for (const out of ['out1', 'out2']) {
      const bundled = await runCli(['bundle', 'bundles/demo', '-o', path.join(work, out), '--json']);
      expect(bundled.exitCode, bundled.stdout).toBe(0);
      const bundlePath = JSON.parse(bundled.stdout).path as string;
      const inspected = await runCli(['inspect', bundlePath, '--sbom']);
      expect(inspected.exitCode, inspected.stderr).toBe(0);
      bundles.push({ path: bundlePath, sbom: inspected.stdout });
    }
    [first] = bundles as [{ path: string; sbom: string }];
    expect(bundles[1]?.sbom).toBe(first.sbom);
    expect(await schemaErrors(first.sbom)).toBeNull();

    const bom = JSON.parse(first.sbom) as Bom;
    expect(bom).toMatchObject({
      bomFormat: 'CycloneDX',
      specVersion: '1.6',
      serialNumber: expect.stringMatching(
        /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      ),
      metadata: { component: { type: 'application', name: 'demo', version: '0.1.0' } },
    });
    expect(bom).not.toHaveProperty('metadata.timestamp');
  });

  it('lists the model with its file hash, and the npm closure and Node binary the runtime ships', async () => {
    const bom = JSON.parse(first.sbom) as Bom;
    const model = bom.components.find((component) => component['bom-ref'] === 'component:model');
    const weights = await readFile('bundles/demo/model/tiny-llama.gguf');
    const weightsHex = createHash('sha256').update(weights).digest('hex');
    expect(model).toMatchObject({
      type: 'machine-learning-model',
      licenses: [{ license: { id: 'Apache-2.0' } }],
      hashes: [{ alg: 'SHA-256', content: weightsHex }],
      modelCard: { properties: [{ name: 'format', value: 'gguf' }] },
      components: [
        { type: 'file', name: 'tiny-llama.gguf', hashes: [{ alg: 'SHA-256', content: weightsHex }] },
      ],
    });

    // The LoRA adapter is a model too, and names the base it runs over: a dependency and its pin.
    const adapter = bom.components.find((component) => component['bom-ref'] === 'component:tiny-lora');
    const loraHex = createHash('sha256')
      .update(await readFile('bundles/demo/adapter/tiny-lora.gguf'))
      .digest('hex');
    expect(adapter).toMatchObject({
      type: 'machine-learning-model',
      hashes: [{ alg: 'SHA-256', content: loraHex }],
      modelCard: { properties: [{ name: 'format', value: 'gguf' }] },
    });
    expect(adapter?.properties).toEqual(
      expect.arrayContaining([
        { name: 'apertus:kind', value: 'adapter' },
        { name: 'apertus:adapter-base', value: 'model' },
        { name: 'apertus:adapter-base-digest', value: `sha256:${weightsHex}` },
      ]),
    );
    expect(bom.dependencies).toContainEqual({ ref: 'component:tiny-lora', dependsOn: ['component:model'] });

    const runtime = bom.components.find((component) => component['bom-ref'] === 'component:runtime');
    const nested = runtime?.components ?? [];
    const node = nested.find((component) => component.name === 'node');
    const nodeHex = createHash('sha256')
      .update(await readFile(process.execPath))
      .digest('hex');
    expect(node).toMatchObject({
      type: 'application',
      version: process.version.slice(1),
      hashes: [{ alg: 'SHA-256', content: nodeHex }],
    });

    const libraries = nested.filter((component) => component.type === 'library');
    expect(libraries.find((c) => c.name === 'node-llama-cpp')).toMatchObject({
      version: '3.21.1',
      purl: 'pkg:npm/node-llama-cpp@3.21.1',
      licenses: [{ license: { id: 'MIT' } }],
    });
    expect(libraries.map((c) => c.purl)).toContain('pkg:npm/%40node-llama-cpp/linux-x64@3.21.1');
    // The same closure the runtime collector ships (its own walk of package.json dependencies).
    const shipped = await collectRuntimeFiles(PROJECT_ROOT);
    expect(libraries.map((c) => `${c.name}@${c.version}`).sort()).toEqual(
      shipped.packages.map((p) => `${p.name}@${p.version}`).sort(),
    );
    for (const library of libraries) expect(library.purl).toMatch(/^pkg:npm\/.+@.+$/);
    const refs = flatten(bom.components).map((component) => component['bom-ref']);
    expect(new Set(refs).size).toBe(refs.length);
  });

  it('lists the CLI under apertus/ with its Node and npm closure (ssh2), every library with a SHA-256 that sha256sum recomputes', async () => {
    const bom = JSON.parse(first.sbom) as Bom;
    const cli = bom.components.find((component) => component['bom-ref'] === 'cli:apertus');
    expect(cli).toMatchObject({
      type: 'application',
      name: 'apertus',
      hashes: [{ alg: 'SHA-256', content: expect.stringMatching(/^[0-9a-f]{64}$/) }],
    });
    const nested = cli?.components ?? [];
    const nodeHex = createHash('sha256')
      .update(await readFile(process.execPath))
      .digest('hex');
    expect(nested.find((c) => c.name === 'node')).toMatchObject({
      hashes: [{ alg: 'SHA-256', content: nodeHex }],
    });
    const ssh2 = nested.find((c) => c.name === 'ssh2');
    expect(ssh2).toMatchObject({ type: 'library', purl: expect.stringMatching(/^pkg:npm\/ssh2@\d/) });
    // node-llama-cpp is the runtime's, not the CLI's.
    expect(nested.some((c) => c.name === 'node-llama-cpp')).toBe(false);
    for (const library of flatten(bom.components).filter((c) => c.type === 'library'))
      expect(library.hashes?.[0]?.alg, library.name).toBe('SHA-256');

    // The tree hash is what standard tools compute from the bundle's own files.
    const dir = path.join(work, 'cli-files');
    await mkdir(dir, { recursive: true });
    await execa('tar', ['-xf', first.path, '-C', dir, 'apertus/cli/node_modules/ssh2']);
    const { stdout } = await execa(
      'sh',
      [
        '-c',
        "find . -type f ! -path './node_modules/*' | sed 's|^\\./||' | LC_ALL=C sort | xargs sha256sum | sha256sum",
      ],
      { cwd: path.join(dir, 'apertus/cli/node_modules/ssh2') },
    );
    expect(ssh2?.hashes?.[0]?.content).toBe(stdout.split(' ')[0]);
  });

  it('is a blob of the bundle manifest, covered by SHA256SUMS, and the bundle verifies', async () => {
    const sbom = await readBundleSbom(first.path);
    expect(sbom.bytes.toString('utf8')).toBe(first.sbom);
    expect(sbom.digest).toBe(sha256Digest(sbom.bytes));
    const summary = JSON.parse((await runCli(['inspect', first.path, '--json'])).stdout);
    expect(summary.sbom).toEqual({ digest: sbom.digest, size: sbom.bytes.length });
    const dir = path.join(work, 'extracted');
    await mkdir(dir, { recursive: true });
    await execa('tar', ['-xf', first.path, '-C', dir]);
    const sums = await readFile(path.join(dir, 'SHA256SUMS'), 'utf8');
    expect(sums).toContain(
      `${sbom.digest.slice('sha256:'.length)}  blobs/sha256/${sbom.digest.slice('sha256:'.length)}`,
    );
    const verified = await verifyBundle(first.path);
    expect(verified.results.filter((result) => !['ok', 'unsigned'].includes(result.status))).toEqual([]);
  });

  it('says a bundle written before SBOMs has none, exit 1, with the next step', async () => {
    // The bundle as an older apertus wrote it: a directory whose bundle manifest has only the recipe.
    const dir = path.join(work, 'old');
    await mkdir(dir, { recursive: true });
    await execa('tar', ['-xf', first.path, '-C', dir]);
    const index = JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8'));
    const entry = index.manifests.find(
      (m: { annotations?: Record<string, string> }) => m.annotations?.['dev.apertus.role'] === 'bundle',
    );
    const blob = (digest: string) => path.join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
    const manifest = JSON.parse(await readFile(blob(entry.digest), 'utf8'));
    manifest.layers = manifest.layers.filter(
      (layer: { mediaType: string }) => layer.mediaType !== MEDIA_TYPE.sbom,
    );
    expect(manifest.layers).toHaveLength(1);
    const bytes = canonicalJsonBytes(manifest);
    entry.digest = sha256Digest(bytes);
    entry.size = bytes.length;
    await writeFile(blob(entry.digest), bytes);
    await writeFile(path.join(dir, 'index.json'), canonicalJsonBytes(index));

    const human = await runCli(['inspect', dir, '--sbom']);
    expect(human.exitCode).toBe(1);
    expect(human.stdout).toBe('');
    expect(human.stderr).toContain('holds no SBOM');
    const json = await runCli(['inspect', dir, '--sbom', '--json']);
    expect(json.exitCode).toBe(1);
    expect(JSON.parse(json.stdout).error).toMatchObject({
      code: 'bundle-no-sbom',
      hint: expect.stringContaining('apertus bundle'),
    });
    // Everything else about the bundle still reads.
    const inspected = await runCli(['inspect', dir, '--json']);
    expect(inspected.exitCode, inspected.stdout).toBe(0);
    expect(JSON.parse(inspected.stdout).sbom).toBeNull();
  });
});

describe('the SBOM of an hf: model', () => {
  const REPO = 'swiss-ai/Apertus-8B-Instruct-2509';
  let hub: FakeHub;

  beforeAll(async () => {
    hub = await startFakeHub();
    hub.addRepo(apertusLikeRepo(REPO));
  });
  afterAll(async () => {
    await hub?.close();
  });

  it('names the model by its Hub repo and commit, with the model card the files give', async () => {
    const recipe = path.join(work, 'hf-recipe');
    await mkdir(recipe, { recursive: true });
    await writeFile(
      path.join(recipe, 'apertus.yaml'),
      [
        'apiVersion: apertus.dev/v1',
        'kind: Bundle',
        'metadata:',
        '  name: apertus-8b',
        '  version: 1.0.0',
        'components:',
        '  - name: model',
        '    kind: model',
        `    source: hf:${REPO}@main`,
        '    exclude: ["README.md", ".gitattributes"]',
        '',
      ].join('\n'),
    );
    const env = { CI: 'true', HF_ENDPOINT: hub.url, HF_HOME: path.join(work, 'hf-home') };
    const bundled = await runCli(
      [
        'bundle',
        recipe,
        '-o',
        path.join(work, 'hf-out'),
        '--cache-dir',
        path.join(work, 'hf-cache'),
        '--json',
      ],
      { env },
    );
    expect(bundled.exitCode, bundled.stdout).toBe(0);
    const inspected = await runCli(['inspect', JSON.parse(bundled.stdout).path, '--sbom'], { env });
    expect(inspected.exitCode, inspected.stderr).toBe(0);
    expect(await schemaErrors(inspected.stdout)).toBeNull();

    const bom = JSON.parse(inspected.stdout) as Bom;
    const model = bom.components[0] as Component;
    const commit = model.version as string;
    expect(commit).toMatch(/^[0-9a-f]{40}$/);
    const hubUrl = hub.url.replace(/\/+$/, '');
    expect(model).toMatchObject({
      type: 'machine-learning-model',
      group: 'swiss-ai',
      name: 'Apertus-8B-Instruct-2509',
      purl: `pkg:huggingface/swiss-ai/Apertus-8B-Instruct-2509@${commit}?repository_url=${hubUrl}`,
      licenses: [{ license: { id: 'Apache-2.0' } }],
      externalReferences: [{ type: 'distribution', url: `${hubUrl}/${REPO}/tree/${commit}` }],
      modelCard: {
        modelParameters: { architectureFamily: 'apertus', modelArchitecture: 'ApertusForCausalLM' },
        properties: [{ name: 'format', value: 'safetensors' }],
      },
    });
    const files = model.components ?? [];
    expect(files.map((file) => file.name)).toContain('model-00001-of-00002.safetensors');
    for (const file of files) expect(file.hashes?.[0]?.content).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(bom)).not.toContain('hf_');
  });
});

describe('the SBOM of a wheelhouse', () => {
  it('lists each wheel as a PyPI library with its hash', async () => {
    const plan = await makeBundleFixture(path.join(work, 'wheels-fixture'));
    const wheelDir = path.join(work, 'wheelhouse');
    await mkdir(wheelDir, { recursive: true });
    const wheels = [
      'numpy-2.1.3-cp312-cp312-manylinux_2_17_x86_64.whl',
      'Typing_Extensions-4.12.2-py3-none-any.whl',
    ];
    for (const name of wheels) await writeFile(path.join(wheelDir, name), fixtureBytes(name, 1024));
    plan.components.push({
      name: 'wheels',
      kind: 'wheels',
      provenance: { source: 'pip:requirements.txt' },
      layers: wheels.map((name) => ({ type: 'file', source: path.join(wheelDir, name), title: name })),
    });
    const written = await writeBundle(plan, { outDir: path.join(work, 'wheels-out') });
    const { bytes } = await readBundleSbom(written.path);
    expect(await schemaErrors(bytes.toString('utf8'))).toBeNull();
    const bom = JSON.parse(bytes.toString('utf8')) as Bom;
    const wheelhouse = bom.components.find((component) => component.name === 'wheels');
    expect(wheelhouse?.components).toEqual([
      expect.objectContaining({
        type: 'library',
        name: 'numpy',
        version: '2.1.3',
        purl: 'pkg:pypi/numpy@2.1.3',
        hashes: [{ alg: 'SHA-256', content: sha256Digest(fixtureBytes(wheels[0] as string, 1024)).slice(7) }],
      }),
      expect.objectContaining({ purl: 'pkg:pypi/typing-extensions@4.12.2' }),
    ]);
  });
});
