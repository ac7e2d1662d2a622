import type { BundleEntry, BundleReader } from './bundle-reader.js';
import type { ByteSource } from './byte-source.js';

/**
 * One entry of a bundle as a ByteSource, so a tar layer stored inside the bundle can be
 * indexed (and its entries checked) where it lies, without extracting it.
 */
export function entryByteSource(reader: BundleReader, entry: BundleEntry): ByteSource {
  return {
    description: `${reader.path}:${entry.path}`,
    size: entry.size,
    async read(position, length) {
      if (length === 0) return Buffer.alloc(0);
      const chunks: Buffer[] = [];
      for await (const chunk of reader.createReadStream(entry, {
        start: position,
        end: position + length - 1,
      })) {
        chunks.push(chunk as Buffer);
      }
      const bytes = Buffer.concat(chunks);
      if (bytes.length !== length) throw new Error(`${entry.path} ends before byte ${position + length}`);
      return bytes;
    },
    createReadStream: (start, end) => reader.createReadStream(entry, { start, end: end - 1 }),
    close: async () => {},
  };
}
