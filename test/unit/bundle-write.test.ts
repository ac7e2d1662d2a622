import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectBundle } from '../../src/core/bundle/inspect-bundle.js';
import { type BundleWritePlan, writeBundle } from '../../src/core/bundle/write-bundle.js';
import { openBundle } from '../../src/core/layout/bundle-reader.js';
import { loadBundle } from '../../src/core/layout/load-bundle.js';
import { MEDIA_TYPE } from '../../src/core/layout/media-types.js';
import type { ProgressEvent } from '../../src/core/progress.js';
import { generateKeyPair, readSecretKey, type SecretKey } from '../../src/core/sign/keys.js';
import { fixtureBytes, LONG_DIR, makeBundleFixture, VERY_LONG_PATH } from '../helpers/bundle-fixture.js';

let dir: string;
let plan: BundleWritePlan;
let secretKey: SecretKey;
let publicKeyPath: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'apertus-bundle-'));
  plan = await makeBundleFixture(join(dir, 'fixture'));
  const keys = await generateKeyPair(join(dir, 'keys', 'release'));
  secretKey = await readSecretKey(keys.secretKeyPath);
  publicKeyPath = keys.publicKeyPath;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeBundle', () => {
  it('writes the same plan twice to byte-identical tars, storing duplicate files once', async () => {
    const events: ProgressEvent[] = [];
    const first = await writeBundle(plan, {
      outDir: join(dir, 'out1'),
      secretKey,
      onProgress: (event) => events.push(event),
    });
    const second = await writeBundle(plan, { outDir: join(dir, 'out2'), secretKey });
    expect(first.path).toBe(join(dir, 'out1', 'fixture-1.0.0.tar'));
    expect(first.size).toBe((await stat(first.path)).size);
    expect(first.size % 10240).toBe(0);
    expect((await readFile(first.path)).equals(await readFile(second.path))).toBe(true);
    expect(first.manifestDigest).toBe(second.manifestDigest);
    // 4 distinct files (weights.bin and its copy stored once), 1 tar layer, 2 component
    // manifests, the model's ModelPack config, the empty config, recipe, SBOM, bundle config
    // and bundle manifest.
    expect(first.blobs).toBe(4 + 1 + 2 + 1 + 1 + 4);
    expect(await readdir(join(dir, 'out1'))).toEqual(['fixture-1.0.0.tar']);
    const last = events.filter((event) => event.bytes !== undefined).at(-1);
    expect(last?.bytes?.done).toBe(last?.bytes?.total);
  });

  it('is verified by GNU tar, sha256sum -c and minisign -Vm once extracted', async () => {
    const written = await writeBundle(plan, { outDir: join(dir, 'out-tools'), secretKey });
    const out = join(dir, 'extracted');
    await mkdir(out);
    const listing = await execa('tar', ['--numeric-owner', '-tvf', written.path]);
    expect(listing.stdout.split('\n')[0]).toMatch(/^-rw-r--r-- 0\/0 +30 1970-01-01 00:00 oci-layout$/);
    await execa('tar', ['-xf', written.path, '-C', out]);
    const sums = await execa('sha256sum', ['--strict', '-c', 'SHA256SUMS'], { cwd: out });
    expect(sums.stdout).not.toContain('FAILED');
    const minisign = await execa('minisign', ['-Vm', 'SHA256SUMS', '-p', publicKeyPath], { cwd: out });
    expect(minisign.stdout).toContain(`manifest:${written.manifestDigest}`);
    expect(await readFile(join(out, 'oci-layout'), 'utf8')).toBe('{"imageLayoutVersion":"1.0.0"}');

    // The tar layer extracts with its modes and its pax long path.
    const layer = join(dir, 'layer');
    await mkdir(layer);
    const weightsHex = createHash('sha256')
      .update(fixtureBytes('weights', 300 * 1024 + 17))
      .digest('hex');
    expect((await stat(join(out, 'blobs/sha256', weightsHex))).size).toBe(300 * 1024 + 17);
    const bundle = await openBundle(written.path);
    try {
      const loaded = await loadBundle(bundle);
      const runtime = loaded.components.find((component) => component.name === 'runtime');
      const tarLayer = runtime?.layers.find((descriptor) => descriptor.mediaType === MEDIA_TYPE.tarLayer);
      expect(tarLayer).toBeDefined();
      await execa('tar', ['-xf', join(out, 'blobs/sha256', (tarLayer?.digest ?? '').slice(7)), '-C', layer]);
    } finally {
      await bundle.close();
    }
    expect((await stat(join(layer, 'bin/run.sh'))).mode & 0o777).toBe(0o755);
    expect(await readFile(join(layer, VERY_LONG_PATH), 'utf8')).toBe('deep\n');
  });

  it('loads back as written, from the tar and from the extracted directory', async () => {
    const written = await writeBundle(plan, { outDir: join(dir, 'out-load') });
    const out = join(dir, 'extracted-load');
    await mkdir(out);
    await execa('tar', ['-xf', written.path, '-C', out]);
    for (const path of [written.path, out]) {
      const reader = await openBundle(path);
      try {
        const loaded = await loadBundle(reader);
        expect(loaded.manifestDigest).toBe(written.manifestDigest);
        expect(loaded.config).toMatchObject({
          formatVersion: 2,
          name: 'fixture',
          version: '1.0.0',
          services: plan.services,
          verify: plan.verify,
          recipe: { path: 'apertus.yaml' },
        });
        expect(loaded.blobs.size).toBe(written.blobs);
        const blobBytes = [...loaded.blobs.values()].reduce((sum, size) => sum + size, 0);
        expect(loaded.config.requirements.diskBytes).toBeGreaterThan(300 * 1024);
        expect(loaded.config.requirements.diskBytes).toBeLessThan(blobBytes + 100_000);
        const model = loaded.components.find((component) => component.name === 'model');
        expect(model?.layers.map((layer) => layer.annotations?.['org.opencontainers.image.title'])).toEqual([
          'config.json',
          'weights.bin',
          'copy-of-weights.bin',
          `${LONG_DIR}/tokenizer.json`,
        ]);
        expect(model?.layers[1]?.digest).toBe(model?.layers[2]?.digest);
        // ModelPack v1: weights and weight config as raw layers, each with its filepath.
        expect(model?.layers.map((layer) => layer.mediaType)).toEqual([
          'application/vnd.cncf.model.weight.config.v1.raw',
          'application/vnd.cncf.model.weight.v1.raw',
          'application/vnd.cncf.model.weight.v1.raw',
          'application/vnd.cncf.model.weight.config.v1.raw',
        ]);
        expect(model?.layers.map((layer) => layer.annotations?.['org.cncf.model.filepath'])).toEqual([
          'config.json',
          'weights.bin',
          'copy-of-weights.bin',
          `${LONG_DIR}/tokenizer.json`,
        ]);
        expect(model?.config.mediaType).toBe('application/vnd.cncf.model.config.v1+json');
        const modelConfig = JSON.parse(
          (await reader.readBytes(`blobs/sha256/${model?.config.digest.slice(7)}`)).toString(),
        );
        expect(modelConfig).toEqual({
          descriptor: { name: 'model', version: '1.0.0', licenses: ['Apache-2.0'] },
          config: { architecture: 'Test', format: 'pytorch' },
          modelfs: { type: 'layers', diffIds: model?.layers.map((layer) => layer.digest) },
        });
        const manifest = JSON.parse(
          (await reader.readBytes(`blobs/sha256/${model?.manifestDigest.slice(7)}`)).toString(),
        );
        expect(manifest.artifactType).toBe('application/vnd.cncf.model.manifest.v1+json');
        // Every component has a ref name, so skopeo and oras address each one.
        expect(
          loaded.index.manifests.map((entry) => entry.annotations?.['org.opencontainers.image.ref.name']),
        ).toEqual(['fixture:1.0.0', 'model', 'runtime']);
        const node = loaded.components.find((component) => component.name === 'runtime')?.layers[0];
        expect(node?.annotations?.['dev.apertus.file.mode']).toBe('0755');
      } finally {
        await reader.close();
      }
    }
  });

  it('is summarised by inspectBundle', async () => {
    const written = await writeBundle(plan, { outDir: join(dir, 'out-inspect'), secretKey });
    const summary = await inspectBundle(written.path);
    expect(summary).toMatchObject({
      name: 'fixture',
      version: '1.0.0',
      formatVersion: 2,
      format: 'tar',
      manifestDigest: written.manifestDigest,
      signed: true,
      keyId: secretKey.keyId,
      totalSize: written.size,
      blobs: written.blobs,
      services: plan.services,
    });
    expect(summary.components.map((component) => [component.name, component.kind, component.layers])).toEqual(
      [
        ['model', 'model', 4],
        ['runtime', 'runtime', 2],
      ],
    );
    expect(summary.components[0]?.bytes).toBe(2 * (300 * 1024 + 17) + 27 + 13);
    expect(JSON.parse(JSON.stringify(summary))).toEqual(summary);
  });

  it('leaves nothing that looks like a bundle when interrupted or when a source changes', async () => {
    const controller = new AbortController();
    const outDir = join(dir, 'out-abort');
    await expect(
      writeBundle(plan, { outDir, signal: controller.signal, onProgress: () => controller.abort() }),
    ).rejects.toThrow();
    expect(await readdir(outDir)).toEqual([]);

    const changing = join(dir, 'changing.bin');
    await writeFile(changing, 'before');
    const changed: BundleWritePlan = {
      ...plan,
      components: [
        {
          name: 'c',
          kind: 'files',
          provenance: { source: 'x' },
          layers: [{ type: 'file', source: changing, title: 'f' }],
        },
      ],
    };
    await expect(
      writeBundle(changed, {
        outDir,
        onProgress: () => void writeFile(changing, 'after: longer').catch(() => {}),
      }),
    ).rejects.toMatchObject({ code: 'source-changed', kind: 'operation' });
    expect(await readdir(outDir)).toEqual([]);
  });

  it('refuses a plan with unsafe paths or names before writing', async () => {
    const model = plan.components[0];
    if (model === undefined) throw new Error('fixture without components');
    const bad: BundleWritePlan = {
      ...plan,
      components: [{ ...model, layers: [{ type: 'file', source: '/etc/hostname', title: '../escape' }] }],
    };
    await expect(writeBundle(bad, { outDir: join(dir, 'out-bad') })).rejects.toMatchObject({
      code: 'bundle-bad-plan',
      kind: 'user',
    });
    await expect(
      writeBundle({ ...plan, name: '../x' }, { outDir: join(dir, 'out-bad') }),
    ).rejects.toMatchObject({
      code: 'bundle-bad-plan',
    });
  });
});
