/**
 * Writes a tar straight into the parts of a split bundle: no whole tar is written
 * first, and each part is hashed as its bytes are written.
 *
 * The bundle writer names a blob only after copying it (its header holds the digest),
 * so it holds the header's range until the rename; bytes after a held header in the
 * same part are hashed when the hold ends, by reading back the rest of that part
 * (recently written, so normally from the page cache). Every other byte is hashed from
 * memory as it goes by. Parts are written as `<part>.partial` and renamed, then the
 * `sha256sum` list and, last, the index: a split bundle is complete when its index
 * exists, and a failed run leaves the previous one untouched.
 */
import { createHash, type Hash } from 'node:crypto';
import { type FileHandle, open, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ApertusError } from '../errors.js';
import {
  MAX_SPLIT_PARTS,
  splitChecksumsFileName,
  splitIndexFileName,
  splitPartFileName,
  splitPartNumber,
} from '../layout/names.js';
import {
  encodePartChecksums,
  encodeSplitIndex,
  SPLIT_INDEX_FORMAT_VERSION,
  SPLIT_INDEX_KIND,
  type SplitIndex,
} from '../layout/split-index.js';
import type { TarOutput } from '../layout/tar-writer.js';

export interface WrittenSplit {
  /** The index file: what openBundle, verify and install take. */
  indexPath: string;
  /** `<tar>.parts.sha256`, for `sha256sum -c` in the parts' directory. */
  checksumsPath: string;
  /** What the index file holds: the parts, their offsets, sizes and sha256. */
  index: SplitIndex;
}

const PARTIAL_SUFFIX = '.partial';
const READ_BACK_CHUNK = 1 << 20;

interface PartFile {
  number: number;
  /** Offset of the part in the tar. */
  start: number;
  /** Bytes in the file. */
  written: number;
  /** Bytes fed to `hash`, from the start of the part. */
  hashed: number;
  hash: Hash;
  /** Open until the part is sealed. */
  handle: FileHandle | undefined;
  sha256: string | undefined;
}

export class SplitTarOutput implements TarOutput {
  private readonly parts: PartFile[] = [];
  private end = 0;
  private held: { position: number; length: number } | undefined;
  private written: WrittenSplit | undefined;

  private constructor(
    private readonly outDir: string,
    private readonly tarFileName: string,
    private readonly partSize: number,
  ) {}

  /** Parts of `partSize` bytes named after `tarFileName`, in `outDir`. */
  static create(options: { outDir: string; tarFileName: string; partSize: number }): SplitTarOutput {
    if (!Number.isSafeInteger(options.partSize) || options.partSize < 1) {
      throw new RangeError(`part size ${options.partSize} is not a positive whole number of bytes`);
    }
    return new SplitTarOutput(options.outDir, options.tarFileName, options.partSize);
  }

  /** What finish() wrote. */
  get result(): WrittenSplit {
    if (this.written === undefined) throw new Error('the split bundle is not finished');
    return this.written;
  }

  async write(bytes: Uint8Array, position: number): Promise<void> {
    if (bytes.length === 0) return;
    if (position > this.end) throw new Error(`split write at ${position} leaves a gap after ${this.end}`);
    if (position < this.end && !this.isHeldRange(position, position + bytes.length)) {
      throw new Error(`split write at ${position} rewrites bytes that are not held`);
    }
    let done = 0;
    while (done < bytes.length) {
      const at = position + done;
      const part = await this.partAt(at);
      const offset = at - part.start;
      const length = Math.min(bytes.length - done, this.partSize - offset);
      const segment = bytes.subarray(done, done + length);
      const handle = part.handle;
      if (handle === undefined) throw new Error(`split part ${part.number} is sealed`);
      const writing = writeFully(handle, segment, offset);
      // Hashed while the write is in flight; held bytes wait for release().
      if (!this.isHeld(part) && part.hashed === offset) {
        part.hash.update(segment);
        part.hashed += length;
      }
      await writing;
      part.written = Math.max(part.written, offset + length);
      if (part.written === this.partSize && !this.isHeld(part)) await this.seal(part);
      done += length;
    }
    this.end = Math.max(this.end, position + bytes.length);
  }

  hold(position: number, length: number): void {
    if (this.held !== undefined) throw new Error('split output already holds a range');
    if (position !== this.end) throw new Error(`split hold at ${position}, not at the end (${this.end})`);
    this.held = { position, length };
  }

  async release(): Promise<void> {
    const held = this.parts.filter((part) => this.isHeld(part));
    this.held = undefined;
    for (const part of held) {
      if (part.written === this.partSize) await this.seal(part);
      else await this.catchUp(part);
    }
  }

  async truncate(position: number): Promise<void> {
    if (this.held === undefined || position < this.held.position || position > this.end) {
      throw new Error(`split truncate at ${position} is outside the held range`);
    }
    while (true) {
      const last = this.parts.at(-1);
      if (last === undefined || last.start < position) break;
      this.parts.pop();
      await last.handle?.close();
      await rm(this.partialPath(last.number), { force: true });
    }
    const last = this.parts.at(-1);
    if (last !== undefined && last.start + last.written > position) {
      const length = position - last.start;
      if (last.handle === undefined) throw new Error(`split part ${last.number} is sealed`);
      await last.handle.truncate(length);
      last.written = length;
      if (last.hashed > length) {
        // Only bytes before the hold are hashed, so this is unreachable; start over to stay correct.
        last.hash = createHash('sha256');
        last.hashed = 0;
      }
    }
    this.end = position;
  }

  async finish(): Promise<void> {
    if (this.held !== undefined) throw new Error('split output finished while a range is held');
    for (const part of this.parts) if (part.sha256 === undefined) await this.seal(part);
    const index: SplitIndex = {
      kind: SPLIT_INDEX_KIND,
      formatVersion: SPLIT_INDEX_FORMAT_VERSION,
      tar: { file: this.tarFileName, size: this.end },
      partSize: this.partSize,
      parts: this.parts.map((part) => ({
        number: part.number,
        file: splitPartFileName(this.tarFileName, part.number),
        offset: part.start,
        size: part.written,
        sha256: part.sha256 ?? '',
      })),
    };
    const indexPath = join(this.outDir, splitIndexFileName(this.tarFileName));
    const checksumsPath = join(this.outDir, splitChecksumsFileName(this.tarFileName));
    // The old index goes first, so no moment shows an index over a mix of old and new parts.
    await rm(indexPath, { force: true });
    for (const part of index.parts) await rename(this.partialPath(part.number), join(this.outDir, part.file));
    await this.removeStaleParts(index.parts.length);
    await writeFileDurably(checksumsPath, encodePartChecksums(index));
    await writeFileDurably(indexPath, encodeSplitIndex(index));
    this.written = { indexPath, checksumsPath, index };
  }

  /** Closes and removes the parts written so far; the previous split bundle, if any, stays. */
  async close(): Promise<void> {
    for (const part of this.parts) {
      await part.handle?.close().catch(() => {});
      part.handle = undefined;
      await rm(this.partialPath(part.number), { force: true });
    }
    this.parts.length = 0;
  }

  private isHeld(part: PartFile): boolean {
    const held = this.held;
    return (
      held !== undefined &&
      part.start < held.position + held.length &&
      held.position < part.start + this.partSize
    );
  }

  private isHeldRange(start: number, end: number): boolean {
    const held = this.held;
    return held !== undefined && start >= held.position && end <= held.position + held.length;
  }

  /** The part holding byte `position`, opening the next one when the write reaches it. */
  private async partAt(position: number): Promise<PartFile> {
    const index = Math.floor(position / this.partSize);
    const existing = this.parts[index];
    if (existing !== undefined) return existing;
    if (index !== this.parts.length) throw new Error(`split part ${index + 1} opened out of order`);
    const number = index + 1;
    if (number > MAX_SPLIT_PARTS) {
      throw new ApertusError(
        'bundle-too-many-parts',
        `the bundle needs more than ${MAX_SPLIT_PARTS} parts of ${this.partSize} bytes`,
        { hint: `Pass a larger split size; a split bundle has at most ${MAX_SPLIT_PARTS} parts.` },
      );
    }
    const part: PartFile = {
      number,
      start: index * this.partSize,
      written: 0,
      hashed: 0,
      hash: createHash('sha256'),
      // Read as well as written: held bytes are hashed by reading them back.
      handle: await open(this.partialPath(number), 'w+', 0o644),
      sha256: undefined,
    };
    this.parts.push(part);
    return part;
  }

  /** Hashes what was written but not yet hashed, reading it back from the part. */
  private async catchUp(part: PartFile): Promise<void> {
    const handle = part.handle;
    if (handle === undefined) throw new Error(`split part ${part.number} is sealed`);
    const buffer = Buffer.allocUnsafe(Math.min(READ_BACK_CHUNK, Math.max(1, part.written - part.hashed)));
    while (part.hashed < part.written) {
      const length = Math.min(buffer.length, part.written - part.hashed);
      const { bytesRead } = await handle.read(buffer, 0, length, part.hashed);
      if (bytesRead === 0) throw new Error(`split part ${part.number} ends before byte ${part.written}`);
      part.hash.update(buffer.subarray(0, bytesRead));
      part.hashed += bytesRead;
    }
  }

  /** The part is complete: hash the rest, flush it to disk, close it. */
  private async seal(part: PartFile): Promise<void> {
    await this.catchUp(part);
    const handle = part.handle;
    if (handle === undefined) return;
    await handle.sync();
    await handle.close();
    part.handle = undefined;
    part.sha256 = part.hash.digest('hex');
  }

  private partialPath(number: number): string {
    return join(this.outDir, `${splitPartFileName(this.tarFileName, number)}${PARTIAL_SUFFIX}`);
  }

  /** Parts numbered past the new last one, and partial parts of an interrupted run. */
  private async removeStaleParts(count: number): Promise<void> {
    for (const name of await readdir(this.outDir)) {
      const partial = name.endsWith(PARTIAL_SUFFIX);
      const number = splitPartNumber(
        this.tarFileName,
        partial ? name.slice(0, -PARTIAL_SUFFIX.length) : name,
      );
      if (number !== undefined && (partial || number > count))
        await rm(join(this.outDir, name), { force: true });
    }
  }
}

async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

/** Written under another name, flushed, then renamed: never seen half-written. */
async function writeFileDurably(path: string, bytes: Buffer): Promise<void> {
  const partialPath = `${path}${PARTIAL_SUFFIX}`;
  const handle = await open(partialPath, 'w', 0o644);
  try {
    await writeFully(handle, bytes, 0);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(partialPath, path);
}
