import { openBundle } from '../../src/core/layout/bundle-reader.js';
import { digestFromBlobPath } from '../../src/core/layout/names.js';

/** Blobs stored in a bundle file: digest -> size. */
export async function storedBlobs(bundlePath: string): Promise<Map<string, number>> {
  const reader = await openBundle(bundlePath);
  try {
    const blobs = new Map<string, number>();
    for (const entry of reader.entries) {
      const digest = digestFromBlobPath(entry.path);
      if (digest !== undefined) blobs.set(digest, entry.size);
    }
    return blobs;
  } finally {
    await reader.close();
  }
}

/** The blobs of `bundle` that `already` does not hold, with their sizes, and their total. */
export async function blobsBeyond(
  bundle: string,
  already: string,
): Promise<{ count: number; bytes: number }> {
  const have = await storedBlobs(already);
  const fresh = [...(await storedBlobs(bundle))].filter(([digest]) => !have.has(digest));
  return { count: fresh.length, bytes: fresh.reduce((sum, [, size]) => sum + size, 0) };
}
