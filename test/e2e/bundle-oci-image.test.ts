/**
 * An image component end to end: two images pulled from docker-registry on 127.0.0.1 (one
 * OCI, one Docker schema 2, sharing their layer) are bundled, the bundle verifies, and an
 * install plan loads both into podman on a "host" whose blob store is the bundle's blobs.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeBundle } from '../../src/core/bundle/write-bundle.js';
import { createLocalTransport } from '../../src/core/host/local-transport.js';
import { openBundle } from '../../src/core/layout/bundle-reader.js';
import { loadBundle } from '../../src/core/layout/load-bundle.js';
import { planInstall } from '../../src/core/operations/install-plan.js';
import { fetchOciImage } from '../../src/core/sources/oci/fetch-oci.js';
import { resolveOci } from '../../src/core/sources/oci/resolve-oci.js';
import { loadImages } from '../../src/core/target/images.js';
import { hostLayout } from '../../src/core/target/layout.js';
import { verifyBundle } from '../../src/core/verify/verify-bundle.js';
import { makeBundleFixture } from '../helpers/bundle-fixture.js';
import {
  buildTestImages,
  PODMAN_RUN_OFFLINE,
  podmanRequirement,
  registryRequirement,
  startRegistry,
  type TestRegistry,
} from '../helpers/registry.js';

const requirement = registryRequirement();
const podman = podmanRequirement();

describe.skipIf(!requirement.ok || !podman.ok)(`image components ${requirement.why} ${podman.why}`, () => {
  let work: string;
  let registry: TestRegistry;
  let marker: string;
  let storageConf: string | undefined;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'apertus-bundle-oci-'));
    const images = await buildTestImages(join(work, 'images'));
    marker = images.marker;
    registry = await startRegistry({ dir: join(work, 'registry') });
    await registry.push(images.layout, 'multi', 'apertus/hello:1', { all: true });
    await registry.push(images.layout, 'runnable', 'apertus/hello-docker:1', { format: 'v2s2' });
    // The local transport runs with this process's environment: podman gets a store of its own.
    storageConf = process.env.CONTAINERS_STORAGE_CONF;
    process.env.CONTAINERS_STORAGE_CONF = join(work, 'storage.conf');
    await writeFile(
      process.env.CONTAINERS_STORAGE_CONF,
      `[storage]\ndriver = "overlay"\ngraphroot = "${work}/podman/graph"\nrunroot = "${work}/podman/run"\n`,
    );
  });
  afterAll(async () => {
    await execa('podman', ['rmi', '--all', '--force'], { reject: false });
    if (storageConf === undefined) delete process.env.CONTAINERS_STORAGE_CONF;
    else process.env.CONTAINERS_STORAGE_CONF = storageConf;
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('stores each layer once, verifies, and loads and runs both images from the host store', async () => {
    const ctx = { cacheDir: join(work, 'cache'), env: {} };
    const plan = await makeBundleFixture(join(work, 'fixture'));
    for (const [name, repository] of [
      ['hello', 'apertus/hello'],
      ['hello-docker', 'apertus/hello-docker'],
    ] as const) {
      const resolved = await resolveOci(`oci:${registry.host}/${repository}:1`, { insecure: true }, ctx);
      const image = await fetchOciImage(resolved, ctx);
      plan.components.push({
        name,
        kind: 'image',
        provenance: {
          source: resolved.source,
          revision: resolved.revision,
          ...(resolved.license ? { license: resolved.license } : {}),
        },
        layers: [],
        image: {
          manifest: {
            source: image.manifest.localPath,
            mediaType: image.manifest.mediaType,
            digest: image.manifest.digest,
            size: image.manifest.size,
          },
          blobs: image.files.map((file) => ({
            source: file.localPath,
            digest: file.digest,
            size: file.size,
          })),
        },
      });
    }
    const written = await writeBundle(plan, { outDir: join(work, 'out') });
    const verified = await verifyBundle(written.path);
    expect(verified.results.filter((result) => !['ok', 'unsigned'].includes(result.status))).toEqual([]);
    const reader = await openBundle(written.path);
    const bundle = await loadBundle(reader).finally(() => reader.close());
    const images = bundle.components.filter((component) => component.kind === 'image');
    expect(images.map((image) => image.manifestDigest)).toEqual(
      plan.components.slice(-2).map((c) => c.image?.manifest.digest),
    );
    expect(images[0]?.layers[0]?.digest).toBe(images[1]?.layers[0]?.digest);

    // The bundle's blobs/ is the host store's layout (DESIGN.md sections 2 and 3).
    const root = join(work, 'host');
    await mkdir(root, { recursive: true });
    await execa('tar', ['-xf', written.path, '-C', root, 'blobs']);
    const layout = hostLayout(root);
    // A fresh host's store as the probe sees it: nothing in it yet, plenty of disk.
    const facts = {
      root: { blobs: new Map<string, number>(), partial: new Map<string, number>(), current: null },
      disks: [{ availableBytes: 1e12 }],
    };
    const installPlan = planInstall(
      {
        config: bundle.config,
        manifestDigest: bundle.manifestDigest,
        components: bundle.components,
        blobs: bundle.blobs,
      },
      facts,
      layout,
    );
    expect(installPlan.materialise.some((step) => step.digest === images[0]?.layers[0]?.digest)).toBe(false);
    expect(installPlan.images.map((image) => image.repoTags)).toEqual([
      [`${registry.host}/apertus/hello:1`],
      [`${registry.host}/apertus/hello-docker:1`],
    ]);
    const loaded = await loadImages(createLocalTransport(), layout, installPlan);
    for (const tag of loaded) {
      const run = await execa('podman', [...PODMAN_RUN_OFFLINE, tag]);
      expect(run.stdout.trim()).toBe(marker);
    }
  });
});
