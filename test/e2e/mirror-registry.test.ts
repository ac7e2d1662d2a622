/**
 * `apertus mirror` and skopeo against Debian's docker-registry: a bundle made from a local
 * registry (an image built with umoci) and the local fake Hub (a small safetensors model)
 * is copied component by component with `skopeo copy oci:DIR:REF docker://…` and with
 * `apertus mirror` into a registry behind basic auth; every manifest in the registry hashes
 * to the bundle's digest (`skopeo inspect --raw` plus sha256). A second mirror sends no blob
 * again, and a recipe that takes the mirrored model back through `oci:` bundles it to the
 * same manifest digest.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeHub, safetensorsFile, startFakeHub } from '../helpers/fake-hub.js';
import {
  buildTestImages,
  registryRequirement,
  startRegistry,
  type TestRegistry,
} from '../helpers/registry.js';
import { runCli } from '../helpers/run-cli.js';

const requirement = registryRequirement();
const REPO = 'test-org/Tiny-Model';
const USER = { username: 'mirror', password: 'mirror-s3cret-pw' };

/** Writes `<dir>/apertus.yaml` with these component lines (already indented under `components:`). */
async function writeRecipe(dir: string, name: string, components: string[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  const head = [
    'apiVersion: apertus.dev/v1',
    'kind: Bundle',
    'metadata:',
    `  name: ${name}`,
    '  version: 1.0.0',
  ];
  await writeFile(path.join(dir, 'apertus.yaml'), [...head, 'components:', ...components, ''].join('\n'));
}

const sha256 = (bytes: string | Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** `apertus bundle RECIPE` into `<work>/<out>` with its own cache, no CLI; the bundle's path. */
async function bundleRecipe(
  work: string,
  recipe: string,
  out: string,
  env: NodeJS.ProcessEnv,
): Promise<string> {
  const bundled = await runCli(
    [
      'bundle',
      recipe,
      '-o',
      path.join(work, out),
      '--cache-dir',
      path.join(work, `cache-${out}`),
      '--no-cli',
      '--json',
    ],
    { env },
  );
  expect(bundled.exitCode, bundled.stdout + bundled.stderr).toBe(0);
  return JSON.parse(bundled.stdout).path as string;
}

describe.skipIf(!requirement.ok)(`mirroring a bundle into a registry ${requirement.why}`, () => {
  let work: string;
  let source: TestRegistry;
  let target: TestRegistry;
  let hub: FakeHub;
  let bundlePath: string;
  let layoutDir: string;
  let env: NodeJS.ProcessEnv;
  /** ref name in index.json -> manifest digest. */
  let refs: Map<string, string>;

  const rawDigest = async (reference: string) => {
    const { stdout } = await execa(
      'skopeo',
      [
        'inspect',
        '--raw',
        '--tls-verify=false',
        '--creds',
        `${USER.username}:${USER.password}`,
        `docker://${reference}`,
      ],
      { stripFinalNewline: false },
    );
    return sha256(stdout);
  };

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-mirror-'));
    const images = await buildTestImages(path.join(work, 'images'));
    source = await startRegistry({ dir: path.join(work, 'source') });
    await source.push(images.layout, 'runnable', 'apertus/hello:1');
    target = await startRegistry({
      dir: path.join(work, 'target'),
      auth: 'basic',
      users: { [USER.username]: USER.password },
    });
    hub = await startFakeHub();
    hub.addRepo({
      id: REPO,
      files: [
        { path: 'config.json', content: '{"architectures":["LlamaForCausalLM"],"torch_dtype":"bfloat16"}\n' },
        { path: 'tokenizer.json', content: '{"model":{"type":"BPE"}}\n' },
        {
          path: 'model.safetensors',
          content: safetensorsFile('mirror', [{ name: 'w', shape: [64, 64] }]),
          lfs: true,
        },
        { path: 'README.md', content: '---\nlicense: apache-2.0\n---\n# tiny\n' },
      ],
    });
    env = {
      CI: 'true',
      HF_ENDPOINT: hub.url,
      HF_HOME: path.join(work, 'hf-home'),
      APERTUS_REGISTRY_USERNAME: USER.username,
      APERTUS_REGISTRY_PASSWORD: USER.password,
      APERTUS_REGISTRY_HOST: target.host,
    };
    const recipe = path.join(work, 'recipe');
    await writeRecipe(recipe, 'mirror-me', [
      '  - name: model',
      '    kind: model',
      `    source: hf:${REPO}@main`,
      '  - name: hello',
      '    kind: image',
      `    source: oci:${source.host}/apertus/hello:1`,
      '    insecure: true',
    ]);
    bundlePath = await bundleRecipe(work, recipe, 'out', env);
    layoutDir = path.join(work, 'layout');
    await mkdir(layoutDir);
    await execa('tar', ['-xf', bundlePath, '-C', layoutDir]);
    const index = JSON.parse(await readFile(path.join(layoutDir, 'index.json'), 'utf8'));
    refs = new Map(
      index.manifests.map((m: { digest: string; annotations: Record<string, string> }) => [
        m.annotations['org.opencontainers.image.ref.name'],
        m.digest,
      ]),
    );
  }, 120_000);

  afterAll(async () => {
    await hub?.close();
    await source?.stop();
    await target?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('names every component in index.json; skopeo copies each unchanged, and inspects the image', async () => {
    expect([...refs.keys()].sort()).toEqual(['hello', 'mirror-me:1.0.0', 'model']);
    const inspected = await execa('skopeo', ['inspect', `oci:${layoutDir}:hello`]);
    expect(JSON.parse(inspected.stdout)).toMatchObject({ Architecture: 'amd64', Os: 'linux' });
    for (const [ref, digest] of refs) {
      const destination = `${target.host}/skopeo/${ref.replace(':', '-')}:copied`;
      await execa('skopeo', [
        'copy',
        '--quiet',
        '--preserve-digests',
        '--dest-tls-verify=false',
        '--dest-creds',
        `${USER.username}:${USER.password}`,
        `oci:${layoutDir}:${ref}`,
        `docker://${destination}`,
      ]);
      expect(await rawDigest(destination), ref).toBe(digest);
    }
  }, 120_000);

  it('mirrors every component with digests unchanged, and sends no blob twice', async () => {
    const first = await runCli(
      ['mirror', bundlePath, '--to', `${target.host}/enclave`, '--insecure', '--json'],
      { env },
    );
    expect(first.exitCode, first.stderr).toBe(0);
    const result = JSON.parse(first.stdout);
    expect(result.manifests.map((m: { name: string }) => m.name).sort()).toEqual([
      'hello',
      'mirror-me',
      'model',
    ]);
    const byName = new Map(result.manifests.map((m: { name: string }) => [m.name, m]));
    expect(byName.get('hello')).toMatchObject({
      repository: `${target.host}/enclave/apertus/hello`,
      tag: '1',
    });
    expect(byName.get('model')).toMatchObject({
      repository: `${target.host}/enclave/test-org/tiny-model`,
      kind: 'model',
    });
    for (const manifest of result.manifests) {
      const want = manifest.kind === 'bundle' ? refs.get('mirror-me:1.0.0') : refs.get(manifest.name);
      expect(manifest.digest).toBe(want);
      expect(await rawDigest(`${manifest.repository}:${manifest.tag}`)).toBe(want);
      expect(await rawDigest(`${manifest.repository}@${manifest.digest}`)).toBe(want);
    }
    const model = JSON.parse(
      (
        await execa('skopeo', [
          'inspect',
          '--raw',
          '--tls-verify=false',
          '--creds',
          `${USER.username}:${USER.password}`,
          `docker://${byName.get('model').repository}:${byName.get('model').tag}`,
        ])
      ).stdout,
    );
    expect(model.artifactType).toBe('application/vnd.cncf.model.manifest.v1+json');
    expect(model.config.mediaType).toBe('application/vnd.cncf.model.config.v1+json');

    const again = await runCli(
      ['mirror', bundlePath, '--to', `${target.host}/enclave`, '--insecure', '--json'],
      { env },
    );
    expect(again.exitCode, again.stderr).toBe(0);
    const second = JSON.parse(again.stdout);
    expect(second.bytesPushed).toBe(0);
    expect(second.manifests.every((m: { blobs: { pushed: number } }) => m.blobs.pushed === 0)).toBe(true);
  }, 120_000);

  it('refuses without credentials, naming how to log in, and never echoes the password', async () => {
    const { APERTUS_REGISTRY_USERNAME: _u, APERTUS_REGISTRY_PASSWORD: _p, ...anonymous } = env;
    const run = await runCli(['mirror', bundlePath, '--to', `${target.host}/anon`, '--insecure', '--json'], {
      env: {
        ...anonymous,
        HOME: work,
        XDG_RUNTIME_DIR: work,
        REGISTRY_AUTH_FILE: path.join(work, 'none.json'),
      },
    });
    expect(run.exitCode).not.toBe(0);
    expect(JSON.parse(run.stdout).error.message).toMatch(/authentication|401/i);
    expect(run.stdout + run.stderr).not.toContain(USER.password);
  });

  it('takes the mirrored model back through oci: to the same manifest digest', async () => {
    const mirrored = JSON.parse(
      (
        await runCli(['mirror', bundlePath, '--to', `${target.host}/enclave`, '--insecure', '--json'], {
          env,
        })
      ).stdout,
    );
    const model = mirrored.manifests.find((m: { name: string }) => m.name === 'model');
    const recipe = path.join(work, 'back');
    await writeRecipe(recipe, 'from-mirror', [
      '  - name: model',
      '    kind: model',
      `    source: oci:${model.repository}:${model.tag}`,
      '    insecure: true',
    ]);
    const back = await bundleRecipe(work, recipe, 'out-back', env);
    const summary = JSON.parse((await runCli(['inspect', back, '--json'])).stdout);
    const component = summary.components.find((c: { name: string }) => c.name === 'model');
    expect(component.manifestDigest).toBe(refs.get('model'));
    expect(component.contents.map((c: { title: string }) => c.title).sort()).toEqual([
      'README.md',
      'config.json',
      'model.safetensors',
      'tokenizer.json',
    ]);
  }, 120_000);
});
