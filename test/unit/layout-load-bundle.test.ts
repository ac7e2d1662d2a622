import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { writeBundle } from '../../src/core/bundle/write-bundle.js';
import { openBundle } from '../../src/core/layout/bundle-reader.js';
import { canonicalJsonBytes } from '../../src/core/layout/canonical-json.js';
import { loadBundle, readBundleGraph } from '../../src/core/layout/load-bundle.js';
import { sha256Digest } from '../../src/core/layout/manifests.js';
import { makeBundleFixture } from '../helpers/bundle-fixture.js';

// biome-ignore lint/suspicious/noExplicitAny: these tests edit raw bundle JSON field by field, as a forger would.
type Json = Record<string, any>;

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

const blob = (digest: string) => join(root, 'blobs/sha256', digest.slice('sha256:'.length));
const readJson = async (path: string): Promise<Json> => JSON.parse(await readFile(path, 'utf8'));

/** Stores a changed document as a new blob, as a forger would; returns its digest and size. */
async function store(value: unknown): Promise<{ digest: string; size: number }> {
  const bytes = canonicalJsonBytes(value);
  const digest = sha256Digest(bytes);
  await writeFile(blob(digest), bytes);
  return { digest, size: bytes.length };
}

/** Rewrites the config (and optionally a component manifest), re-linking manifest and index. */
async function mutate(change: { config?: (config: Json) => void; component?: (manifest: Json) => void }) {
  const index = await readJson(join(root, 'index.json'));
  const bundleEntry = index.manifests.find(
    (entry: Json) => entry.annotations['dev.apertus.role'] === 'bundle',
  );
  const manifest = await readJson(blob(bundleEntry.digest));
  const config = await readJson(blob(manifest.config.digest));
  if (change.component) {
    const component = config.components[0];
    const componentManifest = await readJson(blob(component.manifest.digest));
    change.component(componentManifest);
    const stored = await store(componentManifest);
    const indexEntry = index.manifests.find((entry: Json) => entry.digest === component.manifest.digest);
    Object.assign(component.manifest, stored);
    Object.assign(indexEntry, stored);
  }
  change.config?.(config);
  Object.assign(manifest.config, await store(config));
  Object.assign(bundleEntry, await store(manifest));
  await writeFile(join(root, 'index.json'), canonicalJsonBytes(index));
  return { configDigest: manifest.config.digest as string };
}

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
      kind: 'user',
      message: expect.stringMatching(
        new RegExp(`blobs/sha256/${configDigest.slice(7)}.*services\\.0\\.port`),
      ),
      hint: expect.stringContaining('apertus verify'),
    });
  });

  it('asks for a newer apertus when the format version is newer', async () => {
    await mutate({
      config: (config) => {
        config.formatVersion = 2;
      },
    });
    await expect(load()).rejects.toMatchObject({ code: 'bundle-format-newer', hint: /newer apertus/ });
  });

  it('refuses a component layer whose title escapes the component directory', async () => {
    await mutate({
      component: (manifest) => {
        manifest.layers[0].annotations['org.opencontainers.image.title'] = '../../etc/cron.d/x';
      },
    });
    await expect(load()).rejects.toThrow(/component "model" has a file layer without a plain relative title/);
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
