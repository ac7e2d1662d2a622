/**
 * An index of a tar's entries, built by reading each 512-byte header and seeking over
 * the data: nothing is extracted, and a 100 GB bundle is indexed in a few reads.
 * Entries that could write outside the extraction directory are refused here, so no
 * later step ever sees them.
 */
import { ApertusError } from '../errors.js';
import type { ByteSource } from './byte-source.js';
import { confinedRelativePath } from './names.js';

export const TAR_BLOCK = 512;

export interface TarEntry {
  /** Normalised relative path ('a/b', never './a/b' or 'a/b/'). */
  path: string;
  type: 'file' | 'directory';
  size: number;
  mode: number;
  /** Offset of the first header block of this entry (pax or GNU long-name headers included). */
  headerOffset: number;
  dataOffset: number;
}

/** Pax and GNU long-name payloads are a few bytes; more means a damaged or hostile tar. */
const MAX_META_BYTES = 1 << 20;

interface PendingMeta {
  path?: string;
  size?: number;
}

export async function readTarIndex(source: ByteSource, signal?: AbortSignal): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  const seen = new Set<string>();
  let offset = 0;
  let entryStart = 0;
  let meta: PendingMeta = {};

  while (offset + TAR_BLOCK <= source.size) {
    signal?.throwIfAborted();
    const header = await source.read(offset, TAR_BLOCK);
    if (isZeroBlock(header)) break;
    if (!checksumMatches(header)) {
      if (offset === 0) {
        throw new ApertusError('bundle-not-tar', `${source.description} is not a tar archive`, {
          hint: 'Pass a bundle .tar as written by `apertus bundle`, or the directory it was extracted into.',
        });
      }
      throw corrupt(source, offset, 'header checksum does not match');
    }

    const typeflag = String.fromCharCode(header[156] ?? 0);
    const isMeta = typeflag === 'x' || typeflag === 'L' || typeflag === 'K' || typeflag === 'g';
    const headerSize = parseNumber(header, 124, 12, source, offset);
    // A pax size applies to the entry it precedes, never to another extended header.
    const size = isMeta ? headerSize : (meta.size ?? headerSize);
    const dataOffset = offset + TAR_BLOCK;
    const next = dataOffset + paddedSize(size);
    if (dataOffset + size > source.size) {
      throw new ApertusError(
        'bundle-truncated',
        `${source.description} ends inside entry "${headerPath(header)}" (${size} bytes at byte ${dataOffset}, file is ${source.size} bytes)`,
        { hint: 'The file is incomplete; copy it again from the original medium.' },
      );
    }

    if (isMeta) {
      if (size > MAX_META_BYTES) throw corrupt(source, offset, `${size}-byte extended header`);
      const payload = await source.read(dataOffset, size);
      if (typeflag === 'x') meta = { ...meta, ...parsePax(payload, source, offset) };
      else if (typeflag === 'L') meta = { ...meta, path: cString(payload) };
      else if (typeflag === 'g') {
        const global = parsePax(payload, source, offset);
        // Global path or size records would silently apply to every later entry.
        if (global.path !== undefined || global.size !== undefined) {
          throw corrupt(source, offset, 'global pax header sets a path or size');
        }
      }
      // 'K' (GNU long link name) precedes a link entry, which is refused below.
      offset = next;
      continue;
    }

    const rawPath = meta.path ?? headerPath(header);
    meta = {};
    const type = entryType(typeflag, rawPath);
    if (type === undefined) {
      throw unsafe(
        rawPath,
        `it is a ${describeType(typeflag)}; a bundle holds only regular files and directories`,
      );
    }
    const path = confinedRelativePath(rawPath);
    if (path === undefined && type === 'directory' && /^(\.\/?)+$/.test(rawPath)) {
      // `tar -cf x.tar -C dir .` stores the root itself as './'; nothing to index.
      offset = next;
      entryStart = offset;
      continue;
    }
    if (path === undefined) {
      throw unsafe(rawPath, 'its path is absolute, empty or contains ".."');
    }
    if (seen.has(path)) {
      throw unsafe(rawPath, 'the path occurs twice; which copy counts would depend on the extracting tool');
    }
    seen.add(path);
    entries.push({
      path,
      type,
      size: type === 'directory' ? 0 : size,
      mode: parseNumber(header, 100, 8, source, offset) & 0o7777,
      headerOffset: entryStart,
      dataOffset,
    });
    offset = next;
    entryStart = offset;
  }
  return entries;
}

export function paddedSize(size: number): number {
  return Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
}

function entryType(typeflag: string, rawPath: string): 'file' | 'directory' | undefined {
  if (typeflag === '5') return 'directory';
  if (typeflag === '0' || typeflag === '\0' || typeflag === '7') {
    // Pre-POSIX tars mark directories only by a trailing slash.
    return rawPath.endsWith('/') ? 'directory' : 'file';
  }
  return undefined;
}

function describeType(typeflag: string): string {
  switch (typeflag) {
    case '1':
      return 'hard link';
    case '2':
      return 'symbolic link';
    case '3':
      return 'character device';
    case '4':
      return 'block device';
    case '6':
      return 'FIFO';
    default:
      return `tar entry of type '${typeflag.replace(/[^\x20-\x7e]/g, '?')}'`;
  }
}

function headerPath(header: Buffer): string {
  const name = cString(header.subarray(0, 100));
  // Only POSIX ustar ("ustar\0") has a prefix field; GNU tar stores other data there.
  const isUstar = header.toString('latin1', 257, 263) === 'ustar\0';
  const prefix = isUstar ? cString(header.subarray(345, 500)) : '';
  return prefix === '' ? name : `${prefix}/${name}`;
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.toString('utf8', 0, end === -1 ? bytes.length : end);
}

function isZeroBlock(block: Buffer): boolean {
  for (const byte of block) if (byte !== 0) return false;
  return true;
}

function checksumMatches(header: Buffer): boolean {
  const stored = Number.parseInt(
    header
      .toString('latin1', 148, 156)
      .replace(/[\0 ]+$/g, '')
      .trim(),
    8,
  );
  if (!Number.isFinite(stored)) return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < TAR_BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : (header[i] ?? 0);
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  // Some old tars summed signed chars; accept both as GNU tar does.
  return stored === unsigned || stored === signed;
}

function parseNumber(
  header: Buffer,
  start: number,
  length: number,
  source: ByteSource,
  offset: number,
): number {
  const field = header.subarray(start, start + length);
  const first = field[0] ?? 0;
  if (first & 0x80) {
    // GNU base-256: big-endian, the high bit of the first byte marks the encoding.
    if (first === 0xff) throw corrupt(source, offset, 'negative base-256 number');
    let value = first & 0x7f;
    for (let i = 1; i < field.length; i++) {
      value = value * 256 + (field[i] ?? 0);
      if (value > Number.MAX_SAFE_INTEGER) throw corrupt(source, offset, 'base-256 number too large');
    }
    return value;
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw corrupt(source, offset, `bad octal number "${text}"`);
  return Number.parseInt(text, 8);
}

function parsePax(payload: Buffer, source: ByteSource, offset: number): PendingMeta {
  const meta: PendingMeta = {};
  let position = 0;
  while (position < payload.length) {
    const space = payload.indexOf(0x20, position);
    if (space === -1) break;
    const length = Number.parseInt(payload.toString('latin1', position, space), 10);
    if (!Number.isInteger(length) || length <= 0 || position + length > payload.length) {
      throw corrupt(source, offset, 'malformed pax record');
    }
    const record = payload.toString('utf8', space + 1, position + length - 1);
    const equals = record.indexOf('=');
    if (equals === -1) throw corrupt(source, offset, 'malformed pax record');
    const key = record.slice(0, equals);
    const value = record.slice(equals + 1);
    if (key === 'path') meta.path = value;
    else if (key === 'size') {
      if (!/^[0-9]+$/.test(value) || Number(value) > Number.MAX_SAFE_INTEGER) {
        throw corrupt(source, offset, `bad pax size "${value}"`);
      }
      meta.size = Number(value);
    }
    position += length;
  }
  return meta;
}

function corrupt(source: ByteSource, offset: number, why: string): ApertusError {
  return new ApertusError('bundle-corrupt', `${source.description} is damaged at byte ${offset}: ${why}`, {
    hint: 'Copy the bundle again from the original medium, then run `apertus verify` on it.',
  });
}

function unsafe(path: string, why: string): ApertusError {
  return new ApertusError('bundle-unsafe-entry', `refusing bundle entry "${path}": ${why}`, {
    hint: 'This is not a bundle written by apertus, or it was altered; obtain the bundle again from its publisher.',
  });
}
