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

/**
 * `sources` one after another, as one source: how a split bundle's parts are read in
 * place. Reads and streams cross part boundaries; nothing is copied to disk. Takes
 * ownership of the sources.
 */
export function concatByteSources(sources: readonly ByteSource[], description: string): ByteSource {
  return new ConcatByteSource(sources, description);
}

class ConcatByteSource implements ByteSource {
  readonly size: number;
  /** starts[i] is where sources[i] begins; one more entry holds the total size. */
  private readonly starts: number[];

  constructor(
    private readonly sources: readonly ByteSource[],
    readonly description: string,
  ) {
    this.starts = [0];
    let size = 0;
    for (const source of sources) {
      size += source.size;
      this.starts.push(size);
    }
    this.size = size;
  }

  async read(position: number, length: number): Promise<Buffer> {
    this.check(position, position + length);
    const buffers: Buffer[] = [];
    for (const { source, start, end } of this.segments(position, position + length)) {
      buffers.push(await source.read(start, end - start));
    }
    return buffers.length === 1 ? (buffers[0] ?? Buffer.alloc(0)) : Buffer.concat(buffers, length);
  }

  createReadStream(start: number, end: number): Readable {
    this.check(start, end);
    return Readable.from(this.chunks(start, end), { objectMode: false, highWaterMark: 2 * STREAM_CHUNK });
  }

  async close(): Promise<void> {
    const results = await Promise.allSettled(this.sources.map((source) => source.close()));
    const failed = results.find((result) => result.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  private async *chunks(start: number, end: number): AsyncGenerator<Buffer> {
    for (const segment of this.segments(start, end)) {
      for await (const chunk of segment.source.createReadStream(segment.start, segment.end)) {
        yield chunk as Buffer;
      }
    }
  }

  /** The pieces of [start, end) in each source, in order, in the sources' own positions. */
  private *segments(
    start: number,
    end: number,
  ): Generator<{ source: ByteSource; start: number; end: number }> {
    let index = this.indexAt(start);
    for (let position = start; position < end; index++) {
      const source = this.sources[index];
      const sourceStart = this.starts[index];
      const sourceEnd = this.starts[index + 1];
      if (source === undefined || sourceStart === undefined || sourceEnd === undefined) return;
      const segmentEnd = Math.min(end, sourceEnd);
      if (segmentEnd > position) {
        yield { source, start: position - sourceStart, end: segmentEnd - sourceStart };
      }
      position = segmentEnd;
    }
  }

  /** The source holding byte `position` (binary search over the starts). */
  private indexAt(position: number): number {
    let low = 0;
    let high = this.sources.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if ((this.starts[middle] ?? 0) <= position) low = middle;
      else high = middle - 1;
    }
    return low;
  }

  private check(start: number, end: number): void {
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || start > end) {
      throw new RangeError(`bad byte range ${start}..${end} of ${this.description}`);
    }
    if (end > this.size) {
      throw new ApertusError(
        'bundle-truncated',
        `${this.description} ends at byte ${this.size}, before the ${end - start} bytes expected at ${start}`,
        {
          hint: 'A part is incomplete; run `apertus verify` on the bundle to see which, then copy it again.',
        },
      );
    }
  }
}
