/**
 * Bundles of an older format keep working: test/fixtures/bundles/format1-0.1.0.tar was
 * written by the format-1 writer (model components as apertus artifacts). This build loads,
 * verifies, inspects and plans the install of it as before, and a format-2 bundle of the
 * same model files cut `--since` it ships none of the model's bytes again, because ModelPack
 * raw layers keep each file's digest.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deltaWrite, readDeltaBase } from '../../src/core/bundle/delta-bundle.js';
import { inspectBundle } from '../../src/core/bundle/inspect-bundle.js';
import { type BundleWritePlan, writeBundle } from '../../src/core/bundle/write-bundle.js';
import { openBundle } from '../../src/core/layout/bundle-reader.js';
import { loadBundle } from '../../src/core/layout/load-bundle.js';
import { planInstall } from '../../src/core/operations/install-plan.js';
import { hostLayout } from '../../src/core/target/layout.js';
import { verifyBundle } from '../../src/core/verify/verify-bundle.js';

const FORMAT1 = join(import.meta.dirname, '../fixtures/bundles/format1-0.1.0.tar');
const MODEL_FILES = ['config.json', 'model.gguf', 'tokenizer.json', 'README.md'];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'apertus-format-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function load(path: string) {
  const reader = await openBundle(path);
  try {
    return await loadBundle(reader);
  } finally {
    await reader.close();
  }
}

describe('a format-1 bundle', () => {
  it('loads with its apertus model artifact and no component ref names', async () => {
    const bundle = await load(FORMAT1);
    expect(bundle.config.formatVersion).toBe(1);
    const model = bundle.components.find((component) => component.name === 'model');
    expect(model?.layers.map((layer) => layer.mediaType)).toEqual(
      MODEL_FILES.map(() => 'application/vnd.apertus.file.v1'),
    );
    expect(model?.config.mediaType).toBe('application/vnd.oci.empty.v1+json');
  });

  it('verifies and is inspected with its files', async () => {
    const verification = await verifyBundle(FORMAT1);
    expect(
      verification.results.filter((entry) => entry.status !== 'ok' && entry.status !== 'unsigned'),
    ).toEqual([]);
    expect(verification.manifestDigest).toBe(
      'sha256:3b121c2f28703b040342b7cd34b38e5d20d33ece6da75a2bea83643080b8884b',
    );
    const summary = await inspectBundle(FORMAT1);
    expect(summary.formatVersion).toBe(1);
    expect(summary.components.find((c) => c.name === 'model')?.contents.map((c) => c.title)).toEqual(
      MODEL_FILES,
    );
  });

  it('plans an install that links each model file and extracts the tar layer', async () => {
    const bundle = await load(FORMAT1);
    const layout = hostLayout('/srv/apertus');
    const plan = planInstall(
      bundle,
      {
        root: { blobs: new Map(), partial: new Map(), current: null },
        disks: [{ availableBytes: 1 << 30 }],
      },
      layout,
    );
    const release = layout.release('format1', '0.1.0');
    const links = plan.materialise.flatMap((step) => (step.type === 'link' ? [step.to] : []));
    // Each model file once in the component's directory, and once more in the release's
    // Hugging Face cache (the model is an hf: source pinned to a commit).
    const snapshot = `${release}/hf-cache/models--example--tiny/snapshots/${'0123456789abcdef'.repeat(2)}01234567`;
    expect(links).toEqual([
      ...MODEL_FILES.map((file) => `${release}/model/${file}`),
      ...MODEL_FILES.map((file) => `${snapshot}/${file}`),
    ]);
    expect(plan.materialise.filter((step) => step.type === 'extract')).toHaveLength(1);
  });

  it('is the base of a format-2 delta that ships none of the model files again', async () => {
    const old = await load(FORMAT1);
    const reader = await openBundle(FORMAT1);
    const files = join(dir, 'model');
    await mkdir(files, { recursive: true });
    const model = old.components.find((component) => component.name === 'model');
    const layers: BundleWritePlan['components'][number]['layers'] = [];
    try {
      for (const layer of model?.layers ?? []) {
        const title = layer.annotations?.['org.opencontainers.image.title'] ?? '';
        await writeFile(join(files, title), await reader.readBytes(`blobs/sha256/${layer.digest.slice(7)}`));
        layers.push({ type: 'file', source: join(files, title), title });
      }
    } finally {
      await reader.close();
    }
    const plan: BundleWritePlan = {
      name: 'format1',
      version: '0.2.0',
      description: 'the same model, format 2',
      recipe: { fileName: 'apertus.yaml', bytes: Buffer.from('apiVersion: apertus.dev/v1\nkind: Bundle\n') },
      components: [
        {
          name: 'model',
          kind: 'model',
          provenance: old.config.components[0]?.provenance ?? { source: '' },
          layers,
        },
      ],
      services: old.config.services,
      verify: old.config.verify,
      requirements: {},
    };
    const base = await readDeltaBase(FORMAT1);
    const written = await writeBundle(plan, {
      outDir: join(dir, 'out'),
      delta: await deltaWrite(plan, base),
    });
    expect(written.omitted?.blobs).toBe(MODEL_FILES.length);
    const delta = await load(written.path);
    expect(delta.config.formatVersion).toBe(2);
    expect(delta.components[0]?.layers.map((layer) => layer.digest)).toEqual(
      model?.layers.map((layer) => layer.digest),
    );
    expect(delta.components[0]?.config.mediaType).toBe('application/vnd.cncf.model.config.v1+json');
  });
});
