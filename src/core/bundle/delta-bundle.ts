/**
 * Delta bundles (`apertus bundle --since OLD`): the bundle leaves out every layer blob
 * its base already holds, and its config records what it left out and against which
 * release. Manifests, configs, the recipe and the bundle config always travel: they
 * are small, they are the root of trust, and staging reads them.
 *
 * The base is a bundle (tar, split index or directory) or a text file of digests a host
 * already has: `sha256:<hex>` or `<hex>` as the first word of each line, `#` comments,
 * so `ls /var/lib/apertus/blobs/sha256` and a bundle's SHA256SUMS both work as lists.
 */
import { createHash } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import { ApertusError } from '../errors.js';
import { openBundle } from '../layout/bundle-reader.js';
import { loadBundle } from '../layout/load-bundle.js';
import { digestFromBlobPath, isDigest, isHex } from '../layout/names.js';
import { findSplitIndex } from '../layout/split-index.js';
import { fileChunks } from '../layout/tar-writer.js';
import type { BundleConfig, BundleDelta } from '../layout/types.js';
import type { BundleWritePlan } from './write-bundle.js';

/** What a delta is cut against: the blobs the target holds, and the release they belong to. */
export interface DeltaBase {
  /** The base bundle; null when the base is a list of digests. */
  base: BundleDelta['base'];
  /** Digests ('sha256:<hex>') the target already holds. */
  digests: ReadonlySet<string>;
}

/** What writeBundle needs to write a delta: which digests it may leave out, and the base to record. */
export interface DeltaWrite {
  base: BundleDelta['base'];
  /** Layer blobs to leave out when the bundle would store them. */
  omit: ReadonlySet<string>;
}

/** A digest list larger than this is not a list of digests (a bundle has a few thousand blobs). */
const MAX_DIGEST_LIST_BYTES = 64 << 20;
const TAR_MAGIC_OFFSET = 257;

/** Reads the base of a delta: a bundle in any of its forms, or a digest list. */
export async function readDeltaBase(
  path: string,
  options: { signal?: AbortSignal } = {},
): Promise<DeltaBase> {
  if ((await findSplitIndex(path)) !== undefined || (await isDirectoryOrTar(path))) {
    return readBaseBundle(path, options.signal);
  }
  const bytes = await readFile(path);
  if (bytes.length > MAX_DIGEST_LIST_BYTES) {
    throw new ApertusError('delta-base-invalid', `${path} is neither a bundle nor a list of digests`, {
      hint: 'Pass --since the old bundle (.tar, .tar.parts.json or its directory) or a text file with one sha256:<hex> per line.',
    });
  }
  return { base: null, digests: parseDigestList(bytes.toString('utf8'), path) };
}

/** One digest per line, as the first word: `sha256:<hex>` or `<hex>`; blank lines and `#` comments skipped. */
export function parseDigestList(text: string, where: string): Set<string> {
  const digests = new Set<string>();
  for (const [number, line] of text.split('\n').entries()) {
    const word = line.replace(/#.*$/, '').trim().split(/\s+/)[0] ?? '';
    if (word === '') continue;
    const digest = isHex(word) ? `sha256:${word}` : word;
    if (!isDigest(digest)) {
      throw new ApertusError(
        'delta-base-invalid',
        `${where}, line ${number + 1}: "${word.slice(0, 80)}" is not a sha256 digest`,
        {
          hint: 'Write one digest per line as sha256:<64 lowercase hex digits> (or the bare hex); # starts a comment.',
        },
      );
    }
    digests.add(digest);
  }
  if (digests.size === 0) {
    throw new ApertusError('delta-base-invalid', `${where} lists no digests`, {
      hint: 'Pass --since the old bundle, or a file with the digests the host holds (ls /var/lib/apertus/blobs/sha256 on the host gives them).',
    });
  }
  return digests;
}

/**
 * The digests a delta of `plan` may leave out: those the base holds, minus the image
 * configs (kept, like every other config: the image is loaded and checked from them).
 */
export async function deltaWrite(plan: BundleWritePlan, base: DeltaBase): Promise<DeltaWrite> {
  const omit = new Set(base.digests);
  for (const component of plan.components) {
    if (component.image === undefined) continue;
    const manifest = JSON.parse(await readFile(component.image.manifest.source, 'utf8')) as {
      config?: { digest?: unknown };
    };
    if (typeof manifest.config?.digest === 'string') omit.delete(manifest.config.digest);
  }
  return { base: base.base, omit };
}

/** The config's delta record: what was left out, sorted so the same inputs give the same bytes. */
export function withDelta(
  config: BundleConfig,
  delta: DeltaWrite | undefined,
  omitted: ReadonlyMap<string, number>,
): BundleConfig {
  if (delta === undefined) return config;
  const list = [...omitted].map(([digest, size]) => ({ digest, size }));
  list.sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  return { ...config, delta: { base: delta.base, omitted: list } };
}

/** The sha256 of a file, read once; a delta hashes its sources before deciding to store them. */
export async function digestOfFile(source: string, size: number, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fileChunks(source, size, signal)) hash.update(chunk);
  return `sha256:${hash.digest('hex')}`;
}

async function readBaseBundle(path: string, signal: AbortSignal | undefined): Promise<DeltaBase> {
  const reader = await openBundle(path, signal ? { signal } : {});
  try {
    const bundle = await loadBundle(reader);
    // The base's whole graph, including what it left out itself when it is a delta too:
    // a host that has the base release has all of them.
    const digests = new Set(bundle.blobs.keys());
    for (const entry of reader.entries) {
      const digest = digestFromBlobPath(entry.path);
      if (digest !== undefined) digests.add(digest);
    }
    const { name, version } = bundle.config;
    return { base: { name, version, manifestDigest: bundle.manifestDigest }, digests };
  } finally {
    await reader.close();
  }
}

async function isDirectoryOrTar(path: string): Promise<boolean> {
  const stats = await stat(path).catch((error: unknown) => {
    throw new ApertusError('delta-base-not-found', `cannot read the delta base ${path}`, {
      hint: 'Pass --since the old bundle (.tar, .tar.parts.json or its directory) or a file of digests the host holds.',
      cause: error,
    });
  });
  if (stats.isDirectory()) return true;
  const handle = await open(path, 'r');
  try {
    const header = Buffer.alloc(512);
    const { bytesRead } = await handle.read(header, 0, 512, 0);
    return bytesRead === 512 && header.toString('latin1', TAR_MAGIC_OFFSET, TAR_MAGIC_OFFSET + 5) === 'ustar';
  } finally {
    await handle.close();
  }
}
