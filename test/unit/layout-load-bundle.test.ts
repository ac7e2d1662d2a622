import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { writeBundle } from '../../src/core/bundle/write-bundle.js';
import { openBundle } from '../../src/core/layout/bundle-reader.js';
import { loadBundle, readBundleGraph } from '../../src/core/layout/load-bundle.js';
import { makeBundleFixture } from '../helpers/bundle-fixture.js';
import { blobFile, forgeBundle, type Json } from '../helpers/forge-bundle.js';

let dir: string;
let tar: string;
let root: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'apertus-load-'));
  tar = (await writeBundle(await makeBundleFixture(join(dir, 'fixture')), { outDir: join(dir, 'out') })).path;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
let counter = 0;
beforeEach(async () => {
  root = join(dir, `copy-${counter++}`);
  await mkdir(root);
  await execa('tar', ['-xf', tar, '-C', root]);
});

const blob = (digest: string) => blobFile(root, digest);
const readJson = async (path: string): Promise<Json> => JSON.parse(await readFile(path, 'utf8'));
const mutate = (change: Parameters<typeof forgeBundle>[1]) => forgeBundle(root, change);

async function load() {
  const reader = await openBundle(root);
  try {
    return await loadBundle(reader);
  } finally {
    await reader.close();
  }
}

describe('loadBundle', () => {
  it('names the config blob and the field when the config is malformed', async () => {
    const { configDigest } = await mutate({
      config: (config) => {
        config.services[0].port = 'http';
      },
    });
    await expect(load()).rejects.toMatchObject({
      code: 'bundle-invalid',
      kind: 'operation',
      message: expect.stringMatching(
        new RegExp(`blobs/sha256/${configDigest.slice(7)}.*services\\.0\\.port`),
      ),
      hint: expect.stringContaining('apertus verify'),
    });
  });

  it('asks for a newer apertus when the format version is newer', async () => {
    await mutate({
      config: (config) => {
        config.formatVersion = 3;
      },
    });
    await expect(load()).rejects.toMatchObject({ code: 'bundle-format-newer', hint: /newer apertus/ });
  });

  it('refuses a component layer whose title escapes the component directory', async () => {
    await mutate({
      component: (manifest) => {
        manifest.layers[0].annotations['org.opencontainers.image.title'] = '../../etc/cron.d/x';
        manifest.layers[0].annotations['org.cncf.model.filepath'] = '../../etc/cron.d/x';
      },
    });
    await expect(load()).rejects.toThrow(/component "model" has a file layer without a plain relative title/);
  });

  it('refuses a model layer whose ModelPack filepath and OCI title name different paths', async () => {
    await mutate({
      component: (manifest) => {
        manifest.layers[0].annotations['org.opencontainers.image.title'] = '../../etc/cron.d/x';
      },
    });
    await expect(load()).rejects.toThrow(/component "model" has a layer whose filepath and title differ/);
  });

  it('collects every problem as data, and rejects a non-JSON index', async () => {
    const index = await readJson(join(root, 'index.json'));
    const components = index.manifests.filter(
      (entry: Json) => entry.annotations['dev.apertus.role'] === 'component',
    );
    for (const entry of components) await rm(blob(entry.digest));
    const reader = await openBundle(root);
    try {
      const { bundle, problems } = await readBundleGraph(reader);
      expect(bundle).toBeUndefined();
      expect(problems.map((problem) => problem.status)).toEqual(['missing', 'missing']);
      expect(problems[0]?.detail).toContain('the manifest of component "model"');
    } finally {
      await reader.close();
    }
    await writeFile(join(root, 'index.json'), '{not json');
    await expect(load()).rejects.toThrow(/index\.json: the image index is not valid JSON/);
  });
});

/**
 * Issue 9, findings 1 and 3: a bundle re-hashed (and re-signed) by hand whose names,
 * ids, paths, ports or arguments would reach a host as something else is refused when it
 * is loaded, before anything on a host changes, naming the field.
 */
describe('a forged bundle config is refused at load, naming the field', () => {
  const vllm = (extraArgs: string[]) => ({
    name: 'gpu',
    runtime: 'vllm',
    image: { component: 'runtime', reference: 'docker.io/vllm/vllm-openai:v0.20.0' },
    model: { component: 'model', path: '', id: 'm' },
    port: 18000,
    bind: '127.0.0.1',
    embeddings: false,
    dtype: 'auto',
    extraArgs,
  });
  const rag = (fields: Json) => ({
    name: 'rag',
    runtime: 'rag',
    port: 18090,
    runtimeUrl: 'http://127.0.0.1:18080',
    embeddingModel: 'test',
    dimension: 4,
    chatModel: 'test',
    dependsOn: ['chat'],
    ...fields,
  });
  it.each<[string, (config: Json) => void, string]>([
    [
      'a service name that is a shell command',
      (c) => {
        c.services[0].name = '$(touch /tmp/x)';
      },
      'services.0.name',
    ],
    [
      'a bundle name ".."',
      (c) => {
        c.name = '..';
      },
      'name',
    ],
    [
      'a version "../victim"',
      (c) => {
        c.version = '../victim';
      },
      'version',
    ],
    [
      'a version "."',
      (c) => {
        c.version = '.';
      },
      'version',
    ],
    [
      'port 0',
      (c) => {
        c.services[0].port = 0;
      },
      'services.0.port',
    ],
    [
      'port 70000',
      (c) => {
        c.services[0].port = 70000;
      },
      'services.0.port',
    ],
    [
      'a model path out of its component',
      (c) => {
        c.services[0].model.path = '../x';
      },
      'services.0.model.path',
    ],
    [
      'a model id that reads as a flag',
      (c) => {
        c.services[0].model.id = '-x';
      },
      'services.0.model.id',
    ],
    [
      'a model id with a right-to-left override',
      (c) => {
        c.services[0].model.id = 'test\u202Egguf.exe';
      },
      'services.0.model.id',
    ],
    [
      'a vLLM extra argument with a newline',
      (c) => {
        c.services.push(vllm(['--enforce-eager\nExecStartPre=/bin/sh -c id']));
      },
      'services.1.extraArgs.0',
    ],
    [
      'threads beyond any host',
      (c) => {
        c.services[0].threads = 1e9;
      },
      'services.0.threads',
    ],
    [
      'a component name with a slash',
      (c) => {
        c.components[0].name = 'model/../..';
      },
      'components.0.name',
    ],
    [
      'two services of one name',
      (c) => {
        c.services.push({ ...c.services[0], port: 18081 });
      },
      'services.1.name',
    ],
    [
      'two services on one port',
      (c) => {
        c.services.push({ ...c.services[0], name: 'other' });
      },
      'services.1.port',
    ],
    [
      'a model component the bundle lacks',
      (c) => {
        c.services[0].model.component = 'weights';
      },
      'services.0.model.component',
    ],
    [
      'a vLLM image that is not an image component',
      (c) => {
        c.services.push(vllm([]));
      },
      'services.1.image.component',
    ],
    [
      'a RAG service calling a service the bundle lacks',
      (c) => {
        c.services.push(rag({ dependsOn: ['nowhere'] }));
      },
      'services.1.dependsOn.0',
    ],
    [
      'a RAG service calling out of the host',
      (c) => {
        c.services.push(rag({ runtimeUrl: 'http://169.254.169.254:80' }));
      },
      'services.1.runtimeUrl',
    ],
    [
      'a golden prompt for a service the bundle lacks',
      (c) => {
        c.verify.golden = [
          { name: 'g', service: 'nowhere', prompt: 'p', maxTokens: 4, temperature: 0, expect: '.' },
        ];
      },
      'verify.golden.0.service',
    ],
    [
      'a delta base version ".."',
      (c) => {
        c.delta = {
          base: { name: 'fixture', version: '..', manifestDigest: `sha256:${'0'.repeat(64)}` },
          omitted: [],
        };
      },
      'delta.base.version',
    ],
    [
      'a description with a newline',
      (c) => {
        c.description = 'fine\n\u001b[2Jnot fine';
      },
      'description',
    ],
  ])('%s', async (_what, change, field) => {
    const { configDigest } = await mutate({ config: change });
    const reader = await openBundle(root);
    try {
      const { bundle, problems } = await readBundleGraph(reader);
      expect(bundle).toBeUndefined();
      expect(problems).toEqual([
        {
          subject: `blobs/sha256/${configDigest.slice('sha256:'.length)}`,
          status: 'invalid',
          detail: expect.stringContaining(`${field}: `),
        },
      ]);
    } finally {
      await reader.close();
    }
    await expect(load()).rejects.toMatchObject({
      code: 'bundle-invalid',
      kind: 'operation',
      message: expect.stringContaining(`${field}: `),
    });
  });

  it('loads the bundle as written, and one whose RAG service calls its model server on loopback', async () => {
    await expect(load()).resolves.toMatchObject({ config: { name: 'fixture', version: '1.0.0' } });
    await mutate({
      config: (c) => {
        c.services.push(rag({}));
      },
    });
    const loaded = await load();
    expect(loaded.config.services.map((s) => s.name)).toEqual(['chat', 'rag']);
  });
});
