/**
 * Read access to a bundle, whether it is the tar `apertus bundle` wrote, that tar
 * split into parts (read in place through its index), or the directory it was
 * extracted into. Callers see the same entries either way.
 */
import { createReadStream as createFileReadStream } from 'node:fs';
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ApertusError } from '../errors.js';
import { type ByteSource, openFileByteSource } from './byte-source.js';
import { findSplitIndex, openSplitParts, readSplitIndex } from './split-index.js';
import { readTarIndex } from './tar-index.js';

export interface BundleEntry {
  /** Relative path inside the bundle, '/'-separated ('blobs/sha256/<hex>'). */
  path: string;
  size: number;
}

/** A byte range inside one entry; like fs.createReadStream, `end` is inclusive. */
export interface EntryRange {
  start?: number;
  end?: number;
}

export type BundleFormat = 'tar' | 'split' | 'directory';

export interface BundleReader {
  /** The path the bundle was opened from; for a split bundle, its index file. */
  readonly path: string;
  readonly format: BundleFormat;
  /** Bytes on disk: the tar's size (joined, for a split bundle), or the sum of the directory's file sizes. */
  readonly size: number;
  /** Regular files in storage order: tar order, or sorted paths for a directory. */
  readonly entries: readonly BundleEntry[];
  get(path: string): BundleEntry | undefined;
  /** The bytes of an entry (or of the entry at a path), or a range of them. */
  createReadStream(entry: BundleEntry | string, range?: EntryRange): Readable;
  readBytes(path: string, options?: { maxBytes?: number }): Promise<Buffer>;
  readText(path: string, options?: { maxBytes?: number }): Promise<string>;
  readJson(path: string, options?: { maxBytes?: number }): Promise<unknown>;
  close(): Promise<void>;
}

/** Metadata files (JSON, SHA256SUMS) are small; a larger one is refused, never buffered. */
export const DEFAULT_MAX_READ_BYTES = 64 << 20;

/**
 * Opens a bundle: a tar, a directory, or a split bundle by its index
 * (`<tar>.parts.json`, or the `<tar>` name when only the parts and index exist).
 */
export async function openBundle(
  path: string,
  options: { signal?: AbortSignal } = {},
): Promise<BundleReader> {
  const splitIndex = await findSplitIndex(path);
  if (splitIndex !== undefined) return openSplitBundle(splitIndex, options.signal);
  let stats: Awaited<ReturnType<typeof stat>>;
  try {
    stats = await stat(path);
  } catch (error) {
    throw new ApertusError('bundle-not-found', `cannot open bundle ${path}: ${(error as Error).message}`, {
      hint: 'Check the path; a bundle is the .tar written by `apertus bundle`, the .tar.parts.json index of a split bundle, or the directory it was extracted into.',
      cause: error,
    });
  }
  if (stats.isDirectory()) return openDirectoryBundle(path, options.signal);
  if (!stats.isFile()) {
    throw new ApertusError('bundle-not-found', `${path} is neither a file nor a directory`, {
      hint: 'Pass the bundle .tar or the directory it was extracted into.',
    });
  }
  const source = await openFileByteSource(path);
  try {
    return await openTarBundle(source, path, options.signal);
  } catch (error) {
    await source.close();
    throw error;
  }
}

async function openSplitBundle(indexPath: string, signal?: AbortSignal): Promise<BundleReader> {
  const index = await readSplitIndex(indexPath);
  const source = await openSplitParts(indexPath, index);
  try {
    return await openTarBundle(source, indexPath, signal, 'split');
  } catch (error) {
    await source.close();
    throw error;
  }
}

/** A tar bundle over any byte source (one file, or a split bundle's parts). Takes ownership of `source`. */
export async function openTarBundle(
  source: ByteSource,
  path: string,
  signal?: AbortSignal,
  format: 'tar' | 'split' = 'tar',
): Promise<BundleReader> {
  const index = await readTarIndex(source, signal);
  const offsets = new Map<string, number>();
  const entries: BundleEntry[] = [];
  for (const entry of index) {
    if (entry.type !== 'file') continue;
    entries.push({ path: entry.path, size: entry.size });
    offsets.set(entry.path, entry.dataOffset);
  }
  return new StoredBundleReader(path, format, source.size, entries, {
    stream: (entry, start, end) =>
      source.createReadStream(offsetOf(offsets, entry) + start, offsetOf(offsets, entry) + end),
    read: (entry) => source.read(offsetOf(offsets, entry), entry.size),
    close: () => source.close(),
  });
}

function offsetOf(offsets: Map<string, number>, entry: BundleEntry): number {
  const offset = offsets.get(entry.path);
  if (offset === undefined) throw new Error(`entry ${entry.path} is not in this bundle`);
  return offset;
}

async function openDirectoryBundle(root: string, signal?: AbortSignal): Promise<BundleReader> {
  const entries: BundleEntry[] = [];
  const walk = async (relative: string): Promise<void> => {
    signal?.throwIfAborted();
    const names = (await readdir(join(root, relative))).sort();
    for (const name of names) {
      const path = relative === '' ? name : `${relative}/${name}`;
      // lstat: a symlink is reported as itself, never followed out of the bundle.
      const stats = await lstat(join(root, path));
      if (stats.isDirectory()) await walk(path);
      else if (stats.isFile()) entries.push({ path, size: stats.size });
      else {
        throw new ApertusError(
          'bundle-unsafe-entry',
          `refusing bundle entry "${path}": it is ${stats.isSymbolicLink() ? 'a symbolic link' : 'not a regular file'}; a bundle holds only regular files and directories`,
          { hint: `Remove ${join(root, path)}, or extract the bundle again from its tar.` },
        );
      }
    }
  };
  await walk('');
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const size = entries.reduce((sum, entry) => sum + entry.size, 0);
  return new StoredBundleReader(root, 'directory', size, entries, {
    stream: (entry, start, end) =>
      // Bound the read to the size seen when the bundle was opened, like a tar entry.
      end <= start
        ? Readable.from([])
        : createFileReadStream(join(root, entry.path), { start, end: end - 1, highWaterMark: 1 << 20 }),
    read: async (entry) => {
      const bytes = await readFile(join(root, entry.path));
      return bytes.subarray(0, entry.size);
    },
    close: async () => {},
  });
}

interface EntryStorage {
  /** Bytes [start, end) of the entry. */
  stream(entry: BundleEntry, start: number, end: number): Readable;
  read(entry: BundleEntry): Promise<Buffer>;
  close(): Promise<void>;
}

class StoredBundleReader implements BundleReader {
  private readonly byPath: Map<string, BundleEntry>;

  constructor(
    readonly path: string,
    readonly format: BundleFormat,
    readonly size: number,
    readonly entries: readonly BundleEntry[],
    private readonly storage: EntryStorage,
  ) {
    this.byPath = new Map(entries.map((entry) => [entry.path, entry]));
  }

  get(path: string): BundleEntry | undefined {
    return this.byPath.get(path);
  }

  createReadStream(entryOrPath: BundleEntry | string, range: EntryRange = {}): Readable {
    const entry = typeof entryOrPath === 'string' ? this.require(entryOrPath) : entryOrPath;
    const start = range.start ?? 0;
    const end = range.end === undefined ? entry.size : range.end + 1;
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > entry.size || start > end) {
      throw new RangeError(`range ${start}..${end - 1} is outside ${entry.path} (${entry.size} bytes)`);
    }
    return this.storage.stream(entry, start, end);
  }

  async readBytes(path: string, options: { maxBytes?: number } = {}): Promise<Buffer> {
    const entry = this.require(path);
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_READ_BYTES;
    if (entry.size > maxBytes) {
      throw new ApertusError(
        'bundle-file-too-large',
        `${path} in ${this.path} is ${entry.size} bytes; at most ${maxBytes} are expected`,
        { hint: `Run \`apertus verify ${this.path}\`; the bundle is damaged or was not written by apertus.` },
      );
    }
    return this.storage.read(entry);
  }

  async readText(path: string, options: { maxBytes?: number } = {}): Promise<string> {
    return (await this.readBytes(path, options)).toString('utf8');
  }

  async readJson(path: string, options: { maxBytes?: number } = {}): Promise<unknown> {
    const text = await this.readText(path, options);
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new ApertusError('bundle-invalid-json', `${path} in ${this.path} is not valid JSON`, {
        hint: `Run \`apertus verify ${this.path}\`; the bundle is damaged or was not written by apertus.`,
        cause: error,
      });
    }
  }

  close(): Promise<void> {
    return this.storage.close();
  }

  private require(path: string): BundleEntry {
    const entry = this.byPath.get(path);
    if (entry === undefined) {
      throw new ApertusError('bundle-missing-file', `${this.path} has no ${path}`, {
        hint: `Run \`apertus verify ${this.path}\` to see what is missing, then copy the bundle again.`,
      });
    }
    return entry;
  }
}
