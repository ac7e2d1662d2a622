/**
 * A deterministic tar writer, used for the bundle and for tar layers. Headers are
 * written by hand for exact control: mtime 0, uid/gid 0, no user or group names,
 * mode 0644 or 0755, POSIX ustar with a pax header only when ustar cannot hold the
 * path or the size. Same entries in, same bytes out; data is always streamed.
 */
import { createReadStream } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { ApertusError } from '../errors.js';
import { confinedRelativePath } from './names.js';
import { paddedSize, TAR_BLOCK } from './tar-index.js';

export type TarMode = 0o644 | 0o755;

export interface TarHeaderFields {
  /** Relative, confined path; directories without a trailing slash. */
  path: string;
  type: 'file' | 'directory';
  size: number;
  mode: TarMode;
}

/** GNU and POSIX tar write archives in records of 20 blocks; so do we. */
const RECORD_SIZE = 20 * TAR_BLOCK;
const MAX_OCTAL_SIZE = 0o77777777777;
const USTAR_NAME_BYTES = 100;
const USTAR_PREFIX_BYTES = 155;

/** The header blocks of one entry: a pax header first when ustar cannot hold it. */
export function encodeTarHeader(fields: TarHeaderFields): Buffer {
  if (fields.mode !== 0o644 && fields.mode !== 0o755) {
    throw new RangeError(`tar mode ${(fields.mode as number).toString(8)} is not 0644 or 0755`);
  }
  const size = fields.type === 'directory' ? 0 : fields.size;
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`bad tar entry size ${size}`);
  const storedPath = fields.type === 'directory' ? `${fields.path}/` : fields.path;
  const split = splitUstarPath(storedPath);
  const pax: Array<[string, string]> = [];
  if (split === undefined) pax.push(['path', storedPath]);
  if (size > MAX_OCTAL_SIZE) pax.push(['size', String(size)]);

  const main = ustarBlock({
    name: split?.name ?? truncateAscii(storedPath, USTAR_NAME_BYTES),
    prefix: split?.prefix ?? '',
    mode: fields.mode,
    size: size > MAX_OCTAL_SIZE ? 0 : size,
    typeflag: fields.type === 'directory' ? '5' : '0',
  });
  if (pax.length === 0) return main;

  const payload = Buffer.from(pax.map(([key, value]) => paxRecord(key, value)).join(''), 'utf8');
  const paxHeader = ustarBlock({
    name: truncateAscii(`PaxHeader/${basename(fields.path)}`, USTAR_NAME_BYTES),
    prefix: '',
    mode: 0o644,
    size: payload.length,
    typeflag: 'x',
  });
  return Buffer.concat([paxHeader, payload, Buffer.alloc(paddedSize(payload.length) - payload.length), main]);
}

/** Zero bytes that fill an entry's data up to the next block. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc(paddedSize(size) - size);
}

/** The end-of-archive marker (two zero blocks), then zeros up to a full record. */
export function tarEnd(position: number): Buffer {
  const end = position + 2 * TAR_BLOCK;
  return Buffer.alloc(Math.ceil(end / RECORD_SIZE) * RECORD_SIZE - position);
}

/** Total bytes of an entry: header blocks, data, padding. */
export function tarEntrySize(fields: TarHeaderFields): number {
  const dataSize = fields.type === 'directory' ? 0 : fields.size;
  return encodeTarHeader(fields).length + paddedSize(dataSize);
}

function splitUstarPath(path: string): { name: string; prefix: string } | undefined {
  // Non-ASCII names go to pax, which declares UTF-8; ustar has no encoding.
  if (!/^[\x20-\x7e]+$/.test(path)) return undefined;
  if (path.length <= USTAR_NAME_BYTES) return { name: path, prefix: '' };
  // Split at the first slash that leaves the name short enough; the prefix must fit too.
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (prefix.length > USTAR_PREFIX_BYTES) return undefined;
    if (name.length > 0 && name.length <= USTAR_NAME_BYTES) return { name, prefix };
  }
  return undefined;
}

function truncateAscii(text: string, bytes: number): string {
  return text.replace(/[^\x20-\x7e]/g, '_').slice(0, bytes);
}

function paxRecord(key: string, value: string): string {
  // The length counts the whole record, its own digits included.
  const body = ` ${key}=${value}\n`;
  const bodyBytes = Buffer.byteLength(body, 'utf8');
  let digits = String(bodyBytes).length;
  if (String(bodyBytes + digits).length > digits) digits += 1;
  return `${bodyBytes + digits}${body}`;
}

function ustarBlock(fields: {
  name: string;
  prefix: string;
  mode: number;
  size: number;
  typeflag: string;
}): Buffer {
  const block = Buffer.alloc(TAR_BLOCK);
  block.write(fields.name, 0, USTAR_NAME_BYTES, 'utf8');
  writeOctal(block, 100, 8, fields.mode);
  writeOctal(block, 108, 8, 0);
  writeOctal(block, 116, 8, 0);
  writeOctal(block, 124, 12, fields.size);
  writeOctal(block, 136, 12, 0);
  block.write(fields.typeflag, 156, 1, 'latin1');
  block.write('ustar\0', 257, 6, 'latin1');
  block.write('00', 263, 2, 'latin1');
  writeOctal(block, 329, 8, 0);
  writeOctal(block, 337, 8, 0);
  block.write(fields.prefix, 345, USTAR_PREFIX_BYTES, 'utf8');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return block;
}

function writeOctal(block: Buffer, offset: number, length: number, value: number): void {
  block.write(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length, 'latin1');
}

/**
 * The bytes of `path`, checked to be exactly `size`: a file that grows or shrinks
 * while it is copied would otherwise produce a bundle whose digests lie.
 */
export async function* fileChunks(path: string, size: number, signal?: AbortSignal): AsyncGenerator<Buffer> {
  let seen = 0;
  const stream = createReadStream(path, { highWaterMark: 1 << 20, ...(signal ? { signal } : {}) });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    seen += chunk.length;
    if (seen > size) {
      stream.destroy();
      throw sourceChanged(path, size);
    }
    yield chunk;
  }
  if (seen !== size) throw sourceChanged(path, size);
}

function sourceChanged(path: string, size: number): ApertusError {
  return new ApertusError(
    'source-changed',
    `${path} changed while it was being bundled (expected ${size} bytes)`,
    {
      kind: 'operation',
      hint: 'Make sure nothing writes to the source files, then run the bundle again.',
    },
  );
}

export interface TarSourceFile {
  /** Path inside the archive. */
  path: string;
  /** Absolute path of the file to copy. */
  source: string;
  mode: TarMode;
}

/** A tar archive laid out before it is written, so its size is known up front. */
export interface TarArchivePlan {
  members: Array<TarHeaderFields & { source?: string }>;
  size: number;
}

/**
 * Lays out an archive of `files`: paths normalised and sorted, parent directories
 * added (mode 0755) so any tar extracts them with the same modes.
 */
export async function planTarArchive(files: TarSourceFile[], describe: string): Promise<TarArchivePlan> {
  const members = new Map<string, TarHeaderFields & { source?: string }>();
  for (const file of files) {
    const path = confinedRelativePath(file.path);
    if (path === undefined || path !== file.path) {
      throw new ApertusError('bundle-bad-path', `${describe}: "${file.path}" is not a plain relative path`, {
        hint: 'Use a relative path without "..", "." or empty components, and no leading or trailing slash.',
      });
    }
    if (members.has(path)) {
      throw new ApertusError('bundle-bad-path', `${describe}: "${path}" is listed twice`, {
        hint: 'Each path may appear once in a layer.',
      });
    }
    const stats = await stat(file.source).catch((error: unknown) => {
      throw new ApertusError('bundle-bad-source', `${describe}: cannot read ${file.source}`, {
        hint: 'Check that the file exists and is readable, or fix the recipe that names it.',
        cause: error,
      });
    });
    if (!stats.isFile()) {
      throw new ApertusError('bundle-bad-source', `${describe}: ${file.source} is not a regular file`, {
        hint: 'Layers hold regular files; point the entry at a file.',
      });
    }
    members.set(path, { path, type: 'file', size: stats.size, mode: file.mode, source: file.source });
  }
  for (const path of [...members.keys()]) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      const existing = members.get(dir);
      if (existing?.type === 'file') {
        throw new ApertusError('bundle-bad-path', `${describe}: "${dir}" is both a file and a directory`, {
          hint: 'Rename one of the entries.',
        });
      }
      if (existing === undefined) members.set(dir, { path: dir, type: 'directory', size: 0, mode: 0o755 });
    }
  }
  // Sorting by the stored name ('a/' for a directory) puts each directory before its contents.
  const sortKey = (member: TarHeaderFields): string =>
    member.type === 'directory' ? `${member.path}/` : member.path;
  const sorted = [...members.values()].sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : 1));
  let size = 0;
  for (const member of sorted) size += tarEntrySize(member);
  size += tarEnd(size).length;
  return { members: sorted, size };
}

/** The archive's bytes as a stream of chunks; file data is read as it is needed. */
export async function* tarArchiveChunks(plan: TarArchivePlan, signal?: AbortSignal): AsyncGenerator<Buffer> {
  let position = 0;
  for (const member of plan.members) {
    signal?.throwIfAborted();
    const header = encodeTarHeader(member);
    yield header;
    position += header.length;
    if (member.type === 'file' && member.source !== undefined) {
      yield* fileChunks(member.source, member.size, signal);
      const padding = tarPadding(member.size);
      if (padding.length > 0) yield padding;
      position += paddedSize(member.size);
    }
  }
  yield tarEnd(position);
}

/**
 * Where a TarFileWriter puts its bytes: one file, or a split bundle's parts. Writes
 * arrive in order at the end, except that a provisional entry's header, marked with
 * `hold`, may be rewritten or everything from it cut off; `release` ends the hold.
 * An output that hashes its bytes hashes everything outside the held range as it is
 * written.
 */
export interface TarOutput {
  write(bytes: Uint8Array, position: number): Promise<void>;
  /** Drops everything from `position` on; only within the held range. */
  truncate(position: number): Promise<void>;
  /** [position, position + length) may be rewritten or truncated until release(). */
  hold(position: number, length: number): void;
  release(): Promise<void>;
  /** Flushes to disk and closes. */
  finish(): Promise<void>;
  /** Closes without finishing, after a failure. */
  close(): Promise<void>;
}

/** One tar file. */
export async function openTarFileOutput(path: string): Promise<TarOutput> {
  return new TarFileOutput(await open(path, 'w', 0o644));
}

class TarFileOutput implements TarOutput {
  constructor(private readonly handle: FileHandle) {}

  async write(bytes: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await this.handle.write(bytes, done, bytes.length - done, position + done);
      done += bytesWritten;
    }
  }

  truncate(position: number): Promise<void> {
    return this.handle.truncate(position);
  }

  hold(): void {}

  async release(): Promise<void> {}

  async finish(): Promise<void> {
    await this.handle.sync();
    await this.handle.close();
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => {});
  }
}

/**
 * Writes a tar with positional writes. Entries can be written before their name is
 * known and renamed afterwards, so content-addressed blobs are hashed while they are
 * copied: every source byte is read once.
 */
export class TarFileWriter {
  private offset = 0;

  constructor(private readonly output: TarOutput) {}

  static async create(path: string): Promise<TarFileWriter> {
    return new TarFileWriter(await openTarFileOutput(path));
  }

  get position(): number {
    return this.offset;
  }

  /**
   * Writes one entry; `data` must hold exactly `fields.size` bytes. `onChunk` sees each
   * chunk before it is written. A `provisional` entry must be renamed or truncated next.
   */
  async writeEntry(
    fields: TarHeaderFields,
    data: Buffer | AsyncIterable<Uint8Array> = Buffer.alloc(0),
    onChunk?: (chunk: Uint8Array) => void,
    options: { provisional?: boolean } = {},
  ): Promise<{ headerOffset: number; headerLength: number }> {
    const headerOffset = this.offset;
    const header = encodeTarHeader(fields);
    if (options.provisional) this.output.hold(headerOffset, header.length);
    await this.output.write(header, this.offset);
    this.offset += header.length;
    const chunks = Buffer.isBuffer(data) ? [data] : data;
    let written = 0;
    let pending: Promise<void> = Promise.resolve();
    try {
      for await (const chunk of chunks) {
        onChunk?.(chunk);
        // Keep one write in flight while the next chunk is read.
        await pending;
        pending = this.output.write(chunk, this.offset);
        this.offset += chunk.length;
        written += chunk.length;
      }
      await pending;
    } finally {
      // A failed read must not leave a write rejecting unobserved.
      await pending.catch(() => {});
    }
    const expected = fields.type === 'directory' ? 0 : fields.size;
    if (written !== expected)
      throw new Error(`tar entry ${fields.path}: wrote ${written} of ${expected} bytes`);
    const padding = tarPadding(written);
    await this.output.write(padding, this.offset);
    this.offset += padding.length;
    return { headerOffset, headerLength: header.length };
  }

  /**
   * Gives a provisional entry its final name. The header must keep its length, so the
   * final path must need the same pax records as the first one.
   */
  async renameEntry(
    entry: { headerOffset: number; headerLength: number },
    fields: TarHeaderFields,
  ): Promise<void> {
    const header = encodeTarHeader(fields);
    if (header.length !== entry.headerLength) {
      throw new Error(`tar entry ${fields.path}: renamed header changes length`);
    }
    await this.output.write(header, entry.headerOffset);
    await this.output.release();
  }

  /** Drops a provisional entry and everything after it (a duplicate blob written before its digest was known). */
  async truncate(position: number): Promise<void> {
    await this.output.truncate(position);
    this.offset = position;
    await this.output.release();
  }

  /** Writes the end-of-archive blocks, flushes to disk and closes; returns the tar's size. */
  async finish(): Promise<number> {
    const end = tarEnd(this.offset);
    await this.output.write(end, this.offset);
    this.offset += end.length;
    await this.output.finish();
    return this.offset;
  }

  async close(): Promise<void> {
    await this.output.close();
  }
}
