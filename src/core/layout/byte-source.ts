/**
 * Random access to the bytes of a bundle tar. The tar index and the reader only use
 * this interface, so a split bundle (`.part-NNN` files) can be read through a source
 * that maps positions onto its parts, without joining them into a second copy.
 */
import { type FileHandle, open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { ApertusError } from '../errors.js';

export interface ByteSource {
  /** Where the bytes come from, for error messages (a path, or 'x.tar.part-000..003'). */
  readonly description: string;
  readonly size: number;
  /** Exactly `length` bytes at `position`; throws when the source ends before that. */
  read(position: number, length: number): Promise<Buffer>;
  /** The bytes in [start, end) as a stream, read in large sequential chunks. */
  createReadStream(start: number, end: number): Readable;
  close(): Promise<void>;
}

const STREAM_CHUNK = 1 << 20;

export async function openFileByteSource(path: string): Promise<ByteSource> {
  const handle = await open(path, 'r');
  try {
    const stats = await handle.stat();
    return new FileByteSource(path, handle, stats.size);
  } catch (error) {
    await handle.close();
    throw error;
  }
}

class FileByteSource implements ByteSource {
  constructor(
    readonly description: string,
    private readonly handle: FileHandle,
    readonly size: number,
  ) {}

  async read(position: number, length: number): Promise<Buffer> {
    const buffer = Buffer.alloc(length);
    let filled = 0;
    while (filled < length) {
      const { bytesRead } = await this.handle.read(buffer, filled, length - filled, position + filled);
      if (bytesRead === 0) {
        throw new ApertusError(
          'bundle-truncated',
          `${this.description} ends at byte ${position + filled}, before the ${length} bytes expected at ${position}`,
          { hint: 'The file is incomplete; copy it again from the original medium.' },
        );
      }
      filled += bytesRead;
    }
    return buffer;
  }

  createReadStream(start: number, end: number): Readable {
    // Positional reads on the shared handle: FileHandle.createReadStream would add a
    // listener to the handle per stream, and a bundle has thousands of entries.
    return Readable.from(this.chunks(start, end), { objectMode: false, highWaterMark: 2 * STREAM_CHUNK });
  }

  private async *chunks(start: number, end: number): AsyncGenerator<Buffer> {
    for (let position = start; position < end; ) {
      const length = Math.min(STREAM_CHUNK, end - position);
      const buffer = Buffer.allocUnsafe(length);
      const { bytesRead } = await this.handle.read(buffer, 0, length, position);
      if (bytesRead === 0) {
        throw new ApertusError(
          'bundle-truncated',
          `${this.description} ends at byte ${position}, before ${end}`,
          {
            hint: 'The file is incomplete; copy it again from the original medium.',
          },
        );
      }
      position += bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}
