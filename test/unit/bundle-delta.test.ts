/**
 * Delta bundles (`bundle --since`): written from real files against a real base bundle
 * or a digest list, then read back with the same reader, verify and inspect the CLI
 * uses, and checked with sha256sum on the extracted tar.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deltaWrite, parseDigestList, readDeltaBase } from '../../src/core/bundle/delta-bundle.js';
import { inspectBundle } from '../../src/core/bundle/inspect-bundle.js';
import { splitBundle } from '../../src/core/bundle/split-bundle.js';
import { type BundleWritePlan, writeBundle } from '../../src/core/bundle/write-bundle.js';
import { openBundle } from '../../src/core/layout/bundle-reader.js';
import { loadBundle } from '../../src/core/layout/load-bundle.js';
import { blobPath, digestFromBlobPath } from '../../src/core/layout/names.js';
import { missingBaseBlobs } from '../../src/core/operations/delta-base-gate.js';
import { planInstall } from '../../src/core/operations/install-plan.js';
import { generateKeyPair, readSecretKey, type SecretKey } from '../../src/core/sign/keys.js';
import { hostLayout } from '../../src/core/target/layout.js';
import { verifyBundle } from '../../src/core/verify/verify-bundle.js';
import { makeBundleFixture } from '../helpers/bundle-fixture.js';

let dir: string;
let v1: BundleWritePlan;
let v2: BundleWritePlan;
let basePath: string;
let fullV2Path: string;
let secretKey: SecretKey;
let publicKeyPath: string;
const NEW_CONFIG = '{"architectures":["Test"],"torch_dtype":"bfloat16"}\n';

function sha256(bytes: string | Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Blob digests stored in a bundle, the layer digests its manifests reference, and its other blobs. */
async function contents(
  path: string,
): Promise<{ stored: Set<string>; layers: Set<string>; metadata: Set<string> }> {
  const reader = await openBundle(path);
  try {
    const bundle = await loadBundle(reader);
    const stored = new Set(
      reader.entries.map((e) => digestFromBlobPath(e.path)).filter((d): d is string => d !== undefined),
    );
    const layers = new Set(bundle.components.flatMap((c) => c.layers.map((l) => l.digest)));
    const metadata = new Set([
      bundle.manifestDigest,
      bundle.manifest.config.digest,
      // The recipe, and any other document the bundle manifest carries (the SBOM).
      ...bundle.manifest.layers.map((l) => l.digest),
      ...bundle.components.flatMap((c) => [c.manifestDigest, c.config.digest]),
    ]);
    return { stored, layers, metadata };
  } finally {
    await reader.close();
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'apertus-delta-'));
  const keys = await generateKeyPair(join(dir, 'keys', 'release'));
  secretKey = await readSecretKey(keys.secretKeyPath);
  publicKeyPath = keys.publicKeyPath;
  v1 = await makeBundleFixture(join(dir, 'v1'));
  basePath = (await writeBundle(v1, { outDir: join(dir, 'out'), secretKey })).path;
  // v2: the same files in a new directory, one of them changed.
  v2 = { ...(await makeBundleFixture(join(dir, 'v2'))), version: '2.0.0' };
  await writeFile(join(dir, 'v2', 'src', 'model', 'config.json'), NEW_CONFIG);
  fullV2Path = (await writeBundle(v2, { outDir: join(dir, 'out'), secretKey })).path;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('bundle --since OLD.tar', () => {
  let deltaPath: string;

  beforeAll(async () => {
    const base = await readDeltaBase(basePath);
    const written = await writeBundle(v2, {
      outDir: join(dir, 'delta'),
      secretKey,
      delta: await deltaWrite(v2, base),
    });
    deltaPath = written.path;
    expect(deltaPath).toBe(join(dir, 'delta', 'fixture-2.0.0-since-1.0.0.tar'));
    const full = await contents(fullV2Path);
    const old = await contents(basePath);
    const unchanged = [...full.layers].filter((d) => old.layers.has(d));
    expect(written.omitted).toEqual({
      blobs: unchanged.length,
      bytes: expect.any(Number),
    });
  });

  it('stores exactly the changed file plus the manifests, configs and recipe', async () => {
    const full = await contents(fullV2Path);
    const delta = await contents(deltaPath);
    // 2 component manifests, the empty config, the recipe, the bundle config and manifest (and an SBOM).
    expect(delta.metadata.size).toBeGreaterThanOrEqual(6);
    expect([...delta.stored].sort()).toEqual([...delta.metadata, sha256(NEW_CONFIG)].sort());
    // Only the bundle config (it records the delta) and the manifest naming it differ from the full bundle's.
    expect([...delta.metadata].filter((d) => !full.metadata.has(d))).toHaveLength(2);
    // The graph is whole: every layer of the full bundle is referenced by the delta too.
    expect([...delta.layers].sort()).toEqual([...full.layers].sort());
  });

  it('verifies on its own, signature included, and reports the left-out blobs as in-base', async () => {
    const verification = await verifyBundle(deltaPath, { publicKeyPath });
    expect(verification.ok).toBe(true);
    expect(verification.signed).toBe(true);
    const full = await contents(fullV2Path);
    const inBase = verification.results.filter((r) => r.status === 'in-base');
    const expected = [...full.layers].filter((d) => d !== sha256(NEW_CONFIG)).map(blobPath);
    expect(inBase.map((r) => r.subject).sort()).toEqual(expected.sort());
    expect(inBase[0]?.detail).toContain('fixture 1.0.0');
    expect(verification.results.filter((r) => !['ok', 'in-base'].includes(r.status))).toEqual([]);
  });

  it('passes sha256sum -c SHA256SUMS once extracted with tar', async () => {
    const extracted = join(dir, 'extracted');
    await mkdir(extracted);
    await execa('tar', ['-xf', deltaPath, '-C', extracted]);
    const checked = await execa('sha256sum', ['-c', 'SHA256SUMS'], { cwd: extracted });
    expect(checked.stdout.split('\n').every((line) => line.endsWith(': OK'))).toBe(true);
  });

  it('still reports a kept blob that is absent as missing', async () => {
    const extracted = join(dir, 'damaged');
    await mkdir(extracted);
    await execa('tar', ['-xf', deltaPath, '-C', extracted]);
    await rm(join(extracted, blobPath(sha256(NEW_CONFIG))));
    const verification = await verifyBundle(extracted);
    expect(verification.ok).toBe(false);
    expect(verification.results).toContainEqual(
      expect.objectContaining({ subject: blobPath(sha256(NEW_CONFIG)), status: 'missing' }),
    );
  });

  it('is shown by inspect with its base and the bytes left out', async () => {
    const summary = await inspectBundle(deltaPath);
    const base = await inspectBundle(basePath);
    expect(summary.delta).toEqual({
      base: { name: 'fixture', version: '1.0.0', manifestDigest: base.manifestDigest },
      omittedBlobs: expect.any(Number),
      omittedBytes: expect.any(Number),
    });
    expect(base.delta).toBeNull();
    const full = await contents(fullV2Path);
    expect(summary.delta?.omittedBlobs).toBe(full.layers.size - 1);
    expect(summary.totalSize).toBeLessThan(base.totalSize / 10);
  });

  it('plans an install that uploads only kept blobs, and names left-out blobs a host lacks', async () => {
    const reader = await openBundle(deltaPath);
    const bundle = await loadBundle(reader);
    await reader.close();
    const layout = hostLayout('/srv/apertus');
    // The host as the probe sees it: its store's blobs with their sizes, and free disk.
    const facts = (blobs: Iterable<string>) => ({
      root: {
        blobs: new Map([...blobs].map((d) => [d.slice('sha256:'.length), bundle.blobs.get(d) ?? 0] as const)),
        partial: new Map<string, number>(),
        current: null,
      },
      disks: [{ path: layout.root, availableBytes: 1 << 30 }],
    });
    const old = await contents(basePath);
    const onBase = planInstall(bundle, facts(old.stored), layout);
    expect(missingBaseBlobs(onBase, bundle.omitted)).toBeNull();
    const uploads = onBase.uploads.map((u) => u.digest);
    expect(uploads).toContain(sha256(NEW_CONFIG));
    expect(uploads.every((d) => !bundle.omitted.has(d))).toBe(true);

    const fresh = planInstall(bundle, facts([]), layout);
    const missing = missingBaseBlobs(fresh, bundle.omitted);
    expect(missing?.blobs.map((b) => b.digest).sort()).toEqual([...bundle.omitted.keys()].sort());
  });

  it('splits like any bundle tar, and the parts verify', async () => {
    const split = await splitBundle(deltaPath, { partSize: 4096, outDir: join(dir, 'split') });
    expect(split.index.parts.length).toBeGreaterThan(1);
    const verification = await verifyBundle(split.path, { publicKeyPath });
    expect(verification.ok).toBe(true);
    expect(verification.results.some((r) => r.status === 'in-base')).toBe(true);
  });
});

describe('bundle --since DIGESTS.txt', () => {
  it('leaves out the listed digests, with no base name, under a -delta name', async () => {
    const sums = await readFile(join(dir, 'out', 'fixture-1.0.0.tar'));
    expect(sums.length).toBeGreaterThan(0);
    const old = await contents(basePath);
    const weights = [...old.layers].find((d) => d !== sha256('{"architectures":["Test"]}\n'));
    const hexes = [...old.stored].map((d) => d.slice('sha256:'.length));
    // Both forms a host gives: `ls blobs/sha256` (bare hex) and sha256: digests, with comments.
    const list = join(dir, 'have.txt');
    await writeFile(
      list,
      `# blobs on gpu-01\n${hexes.slice(0, 3).join('\n')}\n\n${hexes
        .slice(3)
        .map((h) => `sha256:${h}  # kept`)
        .join('\n')}\n`,
    );
    const base = await readDeltaBase(list);
    expect(base.base).toBeNull();
    expect(base.digests.size).toBe(old.stored.size);
    const written = await writeBundle(v2, { outDir: join(dir, 'list'), delta: await deltaWrite(v2, base) });
    expect(written.path).toBe(join(dir, 'list', 'fixture-2.0.0-delta.tar'));
    const summary = await inspectBundle(written.path);
    expect(summary.delta?.base).toBeNull();
    expect(weights).toBeDefined();
    const delta = await contents(written.path);
    expect(delta.stored.has(weights as string)).toBe(false);
    expect(delta.stored.has(sha256(NEW_CONFIG))).toBe(true);
    expect((await verifyBundle(written.path)).ok).toBe(true);
  });

  it('refuses a line that is not a digest, naming the line', () => {
    expect(() => parseDigestList(`sha256:${'a'.repeat(64)}\nsha1:abc\n`, 'have.txt')).toThrow(
      expect.objectContaining({ code: 'delta-base-invalid', message: expect.stringContaining('line 2') }),
    );
    expect(() => parseDigestList('# nothing\n', 'have.txt')).toThrow(
      expect.objectContaining({ code: 'delta-base-invalid' }),
    );
  });
});
