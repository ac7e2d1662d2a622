import { open } from 'node:fs/promises';

/**
 * Reads `length` bytes at `offset` (fewer at the end of the file). Model headers are read
 * through this so the same parser works on a local file and on a blob inside a bundle tar
 * without reading gigabytes of weights.
 */
export type RangeReader = (offset: number, length: number) => Promise<Buffer>;

/** Run `use` with a RangeReader over a local file, closing it afterwards. */
export async function withFileRange<T>(
  path: string,
  use: (read: RangeReader, size: number) => Promise<T>,
): Promise<T> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const read: RangeReader = async (offset, length) => {
      const buffer = Buffer.alloc(Math.max(0, Math.min(length, size - offset)));
      if (buffer.length === 0) return buffer;
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
      return buffer.subarray(0, bytesRead);
    };
    return await use(read, size);
  } finally {
    await handle.close();
  }
}
