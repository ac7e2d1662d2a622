/**
 * The oci: source against real registries on 127.0.0.1 (Debian's docker-registry 2.8, with
 * no auth, htpasswd basic auth, and token auth with our own token server), images built with
 * umoci and pushed with skopeo, and the host side for real: the fetched image laid out by
 * imageArchiveScript from a "host" blob store, loaded with podman and run with runc.
 */
import { createHash } from 'node:crypto';
import { link, mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProgressEvent } from '../../src/core/progress.js';
import { fetchOci, fetchOciImage, ociBlobCachePath } from '../../src/core/sources/oci/fetch-oci.js';
import { imageArchiveScript } from '../../src/core/sources/oci/image-archive.js';
import { resolveOci } from '../../src/core/sources/oci/resolve-oci.js';
import type { SourceContext } from '../../src/core/sources/types.js';
import {
  buildTestImages,
  PODMAN_RUN_OFFLINE,
  podmanRequirement,
  readLayoutBlob,
  registryRequirement,
  startRegistry,
  startRegistryProxy,
  type TestImages,
  type TestRegistry,
} from '../helpers/registry.js';

const requirement = registryRequirement();
const podman = podmanRequirement();

let work: string;
let images: TestImages;
let cases = 0;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'apertus-oci-'));
  if (requirement.ok) images = await buildTestImages(join(work, 'images'));
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** A fresh cache and context per test; `env` holds only what the test gives. */
async function context(env: Record<string, string> = {}, events?: ProgressEvent[]): Promise<SourceContext> {
  const cacheDir = join(work, `cache-${++cases}`);
  await mkdir(cacheDir, { recursive: true });
  return { cacheDir, env, ...(events ? { onProgress: (event: ProgressEvent) => events.push(event) } : {}) };
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

/** Asserts no file under `dir` contains any of the secrets (raw or base64 inside a header). */
async function expectNoSecretIn(dir: string, secrets: string[]): Promise<number> {
  const files = await filesUnder(dir);
  for (const file of files) {
    const bytes = await readFile(file);
    for (const secret of secrets)
      expect(bytes.includes(secret), `${secret.slice(0, 6)}… in ${file}`).toBe(false);
  }
  return files.length;
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

async function errorOf(
  promise: Promise<unknown>,
): Promise<{ code?: string; kind?: string; message: string; hint?: string }> {
  try {
    await promise;
  } catch (error) {
    return error as { code?: string; message: string };
  }
  throw new Error('expected a failure');
}

describe.skipIf(!requirement.ok)(
  `oci: source against docker-registry on 127.0.0.1 ${requirement.why}`,
  () => {
    let registry: TestRegistry;

    beforeAll(async () => {
      registry = await startRegistry({ dir: join(work, 'registry') });
      await registry.push(images.layout, 'runnable', 'test/runnable:1');
      await registry.push(images.layout, 'multi', 'test/multi:1', { all: true });
      await registry.push(images.layout, 'runnable', 'test/docker-format:1', { format: 'v2s2' });
      await registry.push(images.layout, 'big', 'test/big:1');
      await registry.push(images.layout, 'victim', 'test/victim:1');
      await registry.push(images.layout, 'victim-manifest', 'test/victim-manifest:1');
    });
    afterAll(async () => {
      await registry?.stop();
    });

    it('resolves a tag to the manifest digest, with the blobs, sizes and licence', async () => {
      const source = `oci:${registry.host}/test/runnable:1`;
      const resolved = await resolveOci(source, { insecure: true }, await context());
      const manifestBytes = await readLayoutBlob(images.layout, images.runnable.digest);
      const manifest = JSON.parse(manifestBytes.toString()) as {
        config: { digest: string; size: number };
        layers: Array<{ digest: string; size: number; mediaType: string }>;
      };
      expect(resolved).toMatchObject({
        kind: 'oci',
        source,
        revision: images.runnable.digest,
        pinned: `${registry.host}/test/runnable@${images.runnable.digest}`,
        platform: 'linux/amd64',
        license: 'Apache-2.0',
        repoTag: `${registry.host}/test/runnable:1`,
        manifest: {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: images.runnable.digest,
          size: manifestBytes.length,
        },
        image: { cmd: ['/hello'] },
      });
      expect(resolved.index).toBeUndefined();
      expect(resolved.files).toEqual([
        {
          path: `blobs/sha256/${manifest.config.digest.slice(7)}`,
          digest: manifest.config.digest,
          size: manifest.config.size,
          mediaType: 'application/vnd.oci.image.config.v1+json',
        },
        ...manifest.layers.map((layer) => ({
          path: `blobs/sha256/${layer.digest.slice(7)}`,
          digest: layer.digest,
          size: layer.size,
          mediaType: layer.mediaType,
        })),
      ]);
      // The pinned form resolves to the same image, and resolution wrote nothing.
      const again = await resolveOci(resolved.pinned, { insecure: true }, await context());
      expect(again.revision).toBe(resolved.revision);
      expect(again.files).toEqual(resolved.files);
      expect(again.repoTag).toBe(`${registry.host}/test/runnable:sha256-${images.runnable.digest.slice(7)}`);
    });

    it('picks linux/amd64 from a multi-platform index, skipping the attestation', async () => {
      const source = `oci:${registry.host}/test/multi:1`;
      const amd64 = await resolveOci(source, { insecure: true }, await context());
      expect(amd64.revision).toBe(images.runnable.digest);
      expect(amd64.index).toEqual({
        mediaType: 'application/vnd.oci.image.index.v1+json',
        digest: images.multi.digest,
      });
      expect(amd64.pinned).toBe(`${registry.host}/test/multi@${images.runnable.digest}`);
      const arm64 = await resolveOci(source, { insecure: true, platform: 'linux/arm64' }, await context());
      expect(arm64.revision).toBe(images.arm64.digest);
      expect(arm64.platform).toBe('linux/arm64');
      const missing = await errorOf(
        resolveOci(source, { insecure: true, platform: 'linux/s390x' }, await context()),
      );
      expect(missing.code).toBe('oci-platform-not-found');
      expect(missing.message).toContain('linux/arm64/v8, linux/amd64');
      expect(missing.message).not.toContain('unknown');
      // A single-platform tag for another platform is refused, not silently used.
      const mismatch = await errorOf(
        resolveOci(
          `oci:${registry.host}/test/runnable:1`,
          { insecure: true, platform: 'linux/arm64' },
          await context(),
        ),
      );
      expect(mismatch.code).toBe('oci-platform-mismatch');
    });

    it('resolves and fetches a Docker schema 2 image (asked for with both Accept families)', async () => {
      const ctx = await context();
      const resolved = await resolveOci(`oci:${registry.host}/test/docker-format:1`, { insecure: true }, ctx);
      expect(resolved.manifest.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
      expect(resolved.config.mediaType).toBe('application/vnd.docker.container.image.v1+json');
      expect(resolved.layers[0]?.mediaType).toBe('application/vnd.docker.image.rootfs.diff.tar.gzip');
      const files = await fetchOci(resolved, ctx);
      for (const file of files) expect(sha256(await readFile(file.localPath))).toBe(file.digest);
    });

    it('fetches into a shared, verified blob cache and reuses it', async () => {
      const events: ProgressEvent[] = [];
      const ctx = await context({}, events);
      const resolved = await resolveOci(`oci:${registry.host}/test/runnable:1`, { insecure: true }, ctx);
      const image = await fetchOciImage(resolved, ctx);
      expect(image.manifest.localPath).toBe(ociBlobCachePath(ctx.cacheDir, images.runnable.digest));
      expect(await readFile(image.manifest.localPath)).toEqual(
        await readLayoutBlob(images.layout, images.runnable.digest),
      );
      expect(image.files.map((file) => file.origin)).toEqual(['downloaded', 'downloaded']);
      for (const file of image.files) {
        expect(file.localPath).toBe(ociBlobCachePath(ctx.cacheDir, file.digest));
        expect(sha256(await readFile(file.localPath))).toBe(file.digest);
      }
      expect(events.some((event) => event.step === 'fetch' && event.status === 'ok')).toBe(true);
      // The multi-platform tag's amd64 image is the same blobs: nothing is downloaded again.
      const multi = await resolveOci(`oci:${registry.host}/test/multi:1`, { insecure: true }, ctx);
      const reused = await fetchOci(multi, ctx);
      expect(reused.map((file) => file.origin)).toEqual(['cache', 'cache']);
      expect(
        (await filesUnder(join(ctx.cacheDir, 'oci'))).filter((path) => path.endsWith('.partial')),
      ).toEqual([]);
    });

    it('refuses a blob whose bytes do not match its digest, keeping nothing', async () => {
      const ctx = await context();
      const resolved = await resolveOci(`oci:${registry.host}/test/victim:1`, { insecure: true }, ctx);
      const layer = resolved.layers[0]!;
      const data = registry.blobDataPath(layer.digest);
      const bytes = await readFile(data);
      bytes[bytes.length - 10] = (bytes[bytes.length - 10] ?? 0) ^ 0xff;
      await writeFile(data, bytes);
      const error = await errorOf(fetchOci(resolved, ctx));
      expect(error.code).toBe('oci-digest-mismatch');
      expect(error.kind).toBe('operation');
      expect(error.message).toContain(layer.digest);
      const left = await filesUnder(join(ctx.cacheDir, 'oci'));
      expect(left.filter((path) => path.includes(layer.digest.slice(7)))).toEqual([]);
    });

    it('refuses a manifest whose bytes do not match the digest the registry names', async () => {
      const manifest = await readLayoutBlob(images.layout, images.victimManifest.digest);
      const damaged = Buffer.from(
        manifest.toString().replace(/"size":(\d+)/, (_, n: string) => `"size":${Number(n) + 1}`),
      );
      expect(damaged.length).toBe(manifest.length);
      await writeFile(registry.blobDataPath(images.victimManifest.digest), damaged);
      const byTag = await errorOf(
        resolveOci(`oci:${registry.host}/test/victim-manifest:1`, { insecure: true }, await context()),
      );
      expect(byTag.code).toBe('oci-digest-mismatch');
      const byDigest = await errorOf(
        resolveOci(
          `oci:${registry.host}/test/victim-manifest@${images.victimManifest.digest}`,
          { insecure: true },
          await context(),
        ),
      );
      expect(byDigest.code).toBe('oci-digest-mismatch');
    });

    it('resumes an interrupted blob download with Range instead of starting over', async () => {
      const proxy = await startRegistryProxy(registry);
      try {
        const source = `oci:${proxy.host}/test/big:1`;
        const ctx = await context();
        const resolved = await resolveOci(source, { insecure: true }, ctx);
        const big = [...resolved.layers].sort((a, b) => b.size - a.size)[0]!;
        expect(big.size).toBeGreaterThan(2_000_000);
        const cutAt = 768 * 1024;

        // One try only: the cut ends the run, as a network failure or Ctrl-C would.
        proxy.cutBlob(big.digest, cutAt);
        const first = await errorOf(fetchOci(resolved, ctx, { attempts: 1 }));
        expect(first.code).toBe('oci-download-interrupted');
        const partial = `${ociBlobCachePath(ctx.cacheDir, big.digest)}.partial`;
        expect((await stat(partial)).size).toBe(cutAt);

        // The next run asks only for the rest.
        const files = await fetchOci(resolved, ctx);
        const fetched = files.find((file) => file.digest === big.digest)!;
        expect(fetched.origin).toBe('downloaded');
        expect(fetched.downloadedBytes).toBe(big.size - cutAt);
        expect(sha256(await readFile(fetched.localPath))).toBe(big.digest);
        const blobRequests = proxy.requests.filter((request) =>
          request.path.endsWith(`/blobs/${big.digest}`),
        );
        expect(blobRequests.map((request) => [request.range, request.status, request.bytesServed])).toEqual([
          [undefined, 200, cutAt],
          [`bytes=${cutAt}-`, 206, big.size - cutAt],
        ]);

        // Within one run, a cut connection is retried from where it stopped.
        const ctx2 = await context();
        proxy.cutBlob(big.digest, 100_000);
        const retried = await fetchOci(resolved, ctx2);
        expect(retried.find((file) => file.digest === big.digest)?.downloadedBytes).toBe(big.size);
        expect(
          proxy.requests
            .filter((r) => r.path.endsWith(`/blobs/${big.digest}`))
            .slice(2)
            .map((r) => r.range),
        ).toEqual([undefined, 'bytes=100000-']);
      } finally {
        await proxy.stop();
      }
    });
  },
);

describe.skipIf(!requirement.ok)(
  `oci: source against registries that require authentication ${requirement.why}`,
  () => {
    const password = `pw-${createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 20)}`;
    let dir: string;
    let basic: TestRegistry;
    let bearer: TestRegistry;
    let layout: TestImages;

    beforeAll(async () => {
      dir = join(work, 'auth');
      layout = images;
      basic = await startRegistry({ dir: join(dir, 'basic'), auth: 'basic', users: { alice: password } });
      bearer = await startRegistry({ dir: join(dir, 'bearer'), auth: 'bearer', users: { bob: password } });
      await basic.push(layout.layout, 'runnable', 'private/app:1');
      await bearer.push(layout.layout, 'multi', 'private/app:1', { all: true });
    });
    afterAll(async () => {
      await basic?.stop();
      await bearer?.stop();
    });

    it('pulls through a bearer token service, and the credential and tokens land in no file', async () => {
      const source = `oci:${bearer.host}/private/app:1`;
      const anonymous = await errorOf(resolveOci(source, { insecure: true }, await context()));
      expect(anonymous.code).toBe('oci-unauthorized');
      expect(anonymous.hint).toContain('APERTUS_REGISTRY_USERNAME');

      const wrong = await errorOf(
        resolveOci(
          source,
          { insecure: true },
          await context({ APERTUS_REGISTRY_USERNAME: 'bob', APERTUS_REGISTRY_PASSWORD: `${password}-wrong` }),
        ),
      );
      expect(wrong.code).toBe('oci-unauthorized');
      expect(JSON.stringify(wrong)).not.toContain(password);
      expect(wrong.message).not.toContain(password);

      const events: ProgressEvent[] = [];
      const ctx = await context(
        { APERTUS_REGISTRY_USERNAME: 'bob', APERTUS_REGISTRY_PASSWORD: password },
        events,
      );
      const resolved = await resolveOci(source, { insecure: true }, ctx);
      expect(resolved.revision).toBe(layout.runnable.digest);
      const image = await fetchOciImage(resolved, ctx);
      expect(image.files).toHaveLength(2);

      const tokens = bearer.tokenServer!.requests;
      expect(
        tokens.some(
          (request) => request.user === 'bob' && request.scopes.includes('repository:private/app:pull'),
        ),
      ).toBe(true);
      expect(tokens.every((request) => request.service === 'apertus-test-registry')).toBe(true);
      const secrets = [
        password,
        Buffer.from(`bob:${password}`).toString('base64'),
        ...bearer.tokenServer!.issued.map((token) => token.split('.')[2]!),
      ];
      expect(await expectNoSecretIn(ctx.cacheDir, secrets)).toBe(3);
      const said = JSON.stringify(events);
      for (const secret of secrets) expect(said).not.toContain(secret);
    });

    it('pulls with basic auth from a login file, and never sends Authorization to a redirect target', async () => {
      const source = `oci:${basic.host}/private/app:1`;
      const anonymous = await errorOf(resolveOci(source, { insecure: true }, await context()));
      expect(anonymous.code).toBe('oci-unauthorized');

      const authFile = join(dir, 'auth.json');
      await writeFile(
        authFile,
        JSON.stringify({
          auths: { [basic.host]: { auth: Buffer.from(`alice:${password}`).toString('base64') } },
        }),
      );
      const ctx = await context({ REGISTRY_AUTH_FILE: authFile });
      const resolved = await resolveOci(source, { insecure: true }, ctx);
      expect(resolved.revision).toBe(layout.runnable.digest);

      // Blobs redirected to another origin (a storage backend's signed URL) get no credentials.
      const proxy = await startRegistryProxy(basic, { redirectBlobs: true });
      try {
        const auth = { auth: Buffer.from(`alice:${password}`).toString('base64') };
        await writeFile(authFile, JSON.stringify({ auths: { [basic.host]: auth, [proxy.host]: auth } }));
        const viaProxy = await resolveOci(`oci:${proxy.host}/private/app:1`, { insecure: true }, ctx);
        const files = await fetchOci(viaProxy, ctx);
        for (const file of files) expect(sha256(await readFile(file.localPath))).toBe(file.digest);
        expect(proxy.requests.some((request) => request.authorization?.startsWith('Basic '))).toBe(true);
        expect(proxy.storageRequests.length).toBeGreaterThanOrEqual(2);
        expect(proxy.storageRequests.every((request) => request.authorization === undefined)).toBe(true);
      } finally {
        await proxy.stop();
      }
      await expectNoSecretIn(ctx.cacheDir, [password, Buffer.from(`alice:${password}`).toString('base64')]);
    });
  },
);

describe.skipIf(!requirement.ok || !podman.ok)(
  `the fetched image, built into an archive on a host, loads with podman and runs ${requirement.why} ${podman.why}`,
  () => {
    let dir: string;
    let registry: TestRegistry;
    let storageEnv: Record<string, string>;

    beforeAll(async () => {
      dir = join(work, 'podman');
      await mkdir(dir, { recursive: true });
      registry = await startRegistry({ dir: join(dir, 'registry') });
      await registry.push(images.layout, 'multi', 'apertus/hello:1', { all: true });
      await registry.push(images.layout, 'runnable', 'apertus/hello-docker:1', { format: 'v2s2' });
      // Podman's own storage for this test, so no image store outside it is touched.
      const conf = join(dir, 'storage.conf');
      await writeFile(
        conf,
        `[storage]\ndriver = "overlay"\ngraphroot = "${join(dir, 'storage', 'graph')}"\nrunroot = "${join(dir, 'storage', 'run')}"\n`,
      );
      storageEnv = { CONTAINERS_STORAGE_CONF: conf };
    });
    afterAll(async () => {
      if (storageEnv) await execa('podman', ['rmi', '--all', '--force'], { env: storageEnv, reject: false });
      await registry?.stop();
    });

    /** The bundle's blobs as a host's store holds them: /var/lib/apertus/blobs/sha256/<hex>. */
    async function hostStore(paths: string[]): Promise<string> {
      const store = join(dir, 'host', 'blobs', 'sha256');
      await mkdir(store, { recursive: true });
      for (const path of paths) {
        const target = join(store, path.split('/').pop()!);
        await link(path, target).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'EEXIST') throw error;
        });
      }
      return store;
    }

    for (const [name, repository] of [
      ['an OCI image from a multi-platform index', 'apertus/hello'],
      ['a Docker schema 2 image', 'apertus/hello-docker'],
    ] as const) {
      it(`${name}: podman load, podman run, skopeo inspect`, async () => {
        const ctx = await context();
        const resolved = await resolveOci(`oci:${registry.host}/${repository}:1`, { insecure: true }, ctx);
        const image = await fetchOciImage(resolved, ctx);
        const blobDir = await hostStore([
          image.manifest.localPath,
          ...image.files.map((file) => file.localPath),
        ]);
        const archiveDir = join(dir, 'host', 'images', `sha256-${image.manifest.digest.slice(7)}`);
        const script = imageArchiveScript(
          {
            manifest: image.manifest,
            config: image.config,
            layers: image.layers,
            repoTags: [image.repoTag],
          },
          { blobDir, archiveDir, load: 'podman' },
        );
        const loaded = await execa('sh', ['-c', script], { env: storageEnv, reject: false });
        expect(loaded.exitCode, loaded.stderr).toBe(0);

        // Hard links: the archive holds the store's files, not copies.
        const layer = image.layers[0]!;
        const inArchive = await stat(join(archiveDir, 'blobs', 'sha256', layer.digest.slice(7)));
        expect(inArchive.ino).toBe((await stat(join(blobDir, layer.digest.slice(7)))).ino);

        const names = await execa('podman', ['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}'], {
          env: storageEnv,
        });
        expect(names.stdout).toContain(`${image.repoTag} ${image.config.digest.slice(7, 19)}`);
        expect(names.stdout).not.toContain('localhost/');

        const run = await execa('podman', [...PODMAN_RUN_OFFLINE, image.repoTag], {
          env: storageEnv,
          reject: false,
        });
        expect(run.exitCode, run.stderr).toBe(0);
        expect(run.stdout.trim()).toBe(images.marker);

        // skopeo reads the directory as an OCI layout, and its tar as a docker archive
        // (manifest.json: what the classic `docker load` reads).
        const inspected = JSON.parse(
          (await execa('skopeo', ['inspect', `oci:${archiveDir}`])).stdout,
        ) as Record<string, unknown>;
        expect(inspected).toMatchObject({
          Digest: image.manifest.digest,
          Architecture: 'amd64',
          Os: 'linux',
        });
        const tarPath = join(dir, `${repository.replace('/', '-')}.tar`);
        await execa('tar', [
          '-chf',
          tarPath,
          '-C',
          archiveDir,
          'oci-layout',
          'index.json',
          'manifest.json',
          'blobs',
        ]);
        const dockerArchive = JSON.parse(
          (await execa('skopeo', ['inspect', `docker-archive:${tarPath}`])).stdout,
        ) as {
          RepoTags: string[];
          Layers: string[];
        };
        expect(dockerArchive.Layers).toHaveLength(image.layers.length);
        const ociArchive = JSON.parse(
          (await execa('skopeo', ['inspect', `oci-archive:${tarPath}`])).stdout,
        ) as {
          Digest: string;
        };
        expect(ociArchive.Digest).toBe(image.manifest.digest);

        // Run again: the directory is rebuilt and the load is idempotent.
        const again = await execa('sh', ['-c', script], { env: storageEnv, reject: false });
        expect(again.exitCode, again.stderr).toBe(0);
      });
    }

    it('stops with exit status 3 when a blob is missing from the host store', async () => {
      const ctx = await context();
      const resolved = await resolveOci(`oci:${registry.host}/apertus/hello:1`, { insecure: true }, ctx);
      const image = await fetchOciImage(resolved, ctx);
      const store = join(dir, 'empty-store');
      await mkdir(store, { recursive: true });
      const handle = await open(join(store, image.manifest.digest.slice(7)), 'w');
      await handle.close();
      const script = imageArchiveScript(
        { manifest: image.manifest, config: image.config, layers: image.layers, repoTags: [image.repoTag] },
        { blobDir: store, archiveDir: join(dir, 'host', 'images', 'missing'), load: 'podman' },
      );
      const result = await execa('sh', ['-c', script], { env: storageEnv, reject: false });
      expect(result.exitCode).toBe(3);
      expect(result.stderr).toContain('is not in');
    });
  },
);
