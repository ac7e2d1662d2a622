/**
 * The two hashes the Hub publishes for a file (runtime-facts §2.5): LFS files carry the
 * sha256 of their content (`lfs.oid`, also the `X-Linked-Etag`); plain git files carry only
 * their git blob id, `sha1("blob <len>\0" + content)`, which is not the plain sha1.
 * `huggingface_hub` verifies with exactly these two (`utils/_verification.py`).
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export type DigestAlgorithm = 'sha256' | 'git-sha1';

export interface ExpectedDigest {
  algorithm: DigestAlgorithm;
  /** Lower-case hex. */
  hex: string;
}

/** A hash ready for the content bytes; the git blob header needs the length up front. */
export function createContentHash(algorithm: DigestAlgorithm, size: number): Hash {
  if (algorithm === 'sha256') return createHash('sha256');
  return createHash('sha1').update(`blob ${size}\0`);
}

/** Feeds `hash` with bytes [start, end) of a file; `onBytes` gets each chunk's length. */
export async function hashFileRange(
  hash: Hash,
  path: string,
  range: { start?: number; end?: number },
  options: { signal?: AbortSignal; onBytes?: (bytes: number) => void } = {},
): Promise<void> {
  const { start = 0, end } = range;
  if (end !== undefined && end <= start) return;
  const stream = createReadStream(path, {
    start,
    ...(end === undefined ? {} : { end: end - 1 }),
    highWaterMark: 1 << 20,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    options.onBytes?.((chunk as Buffer).length);
  }
}

/** Hex digest of a whole file, for a file of `size` bytes (the size is part of the git form). */
export async function hashFile(
  path: string,
  algorithm: DigestAlgorithm,
  size: number,
  signal?: AbortSignal,
): Promise<string> {
  const hash = createContentHash(algorithm, size);
  await hashFileRange(hash, path, {}, signal ? { signal } : {});
  return hash.digest('hex');
}

export function formatDigest(digest: ExpectedDigest): string {
  return digest.algorithm === 'sha256' ? `sha256:${digest.hex}` : `git-sha1:${digest.hex}`;
}
