/**
 * The index of a split bundle (`<tar>.parts.json`): which files hold the tar, in which
 * order, and each one's size and sha256, so a bad medium is named by its part.
 *
 * The index is not signed and need not be: it only says where the bytes are. Every
 * file inside the tar is still checked against SHA256SUMS and its signature, so an
 * altered index can make verification fail, never pass.
 *
 * Format (formatVersion 1), written with two-space indentation and members in this order:
 *
 *   { "kind": "apertus-split-bundle", "formatVersion": 1,
 *     "tar": { "file": "demo-0.1.0.tar", "size": 3153920 },
 *     "partSize": 1048576,
 *     "parts": [ { "number": 1, "file": "demo-0.1.0.tar.part-001", "offset": 0,
 *                  "size": 1048576, "sha256": "<64 hex>" }, ... ] }
 *
 * Parts are consecutive: part N starts where part N-1 ends, every part but the last is
 * `partSize` bytes, and the sizes add up to the tar's.
 */
import { open, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { ApertusError } from '../errors.js';
import { describeIssues } from './bundle-schemas.js';
import { type ByteSource, concatByteSources, openFileByteSource } from './byte-source.js';
import { formatChecksums } from './checksums.js';
import {
  MAX_SPLIT_PARTS,
  splitIndexFileName,
  splitPartFileName,
  tarFileNameOfSplitIndex,
  tarFileNameOfSplitPart,
} from './names.js';

export const SPLIT_INDEX_KIND = 'apertus-split-bundle';
export const SPLIT_INDEX_FORMAT_VERSION = 1;

export interface SplitPart {
  /** 1-based, as in the file name. */
  number: number;
  /** Plain file name, in the index's directory. */
  file: string;
  /** Where the part starts in the tar. */
  offset: number;
  size: number;
  /** Lowercase hex, as sha256sum prints it. */
  sha256: string;
}

export interface SplitIndex {
  kind: typeof SPLIT_INDEX_KIND;
  formatVersion: typeof SPLIT_INDEX_FORMAT_VERSION;
  /** The tar the parts make up when joined: its file name and size. */
  tar: { file: string; size: number };
  partSize: number;
  parts: SplitPart[];
}

/** An index names a few hundred parts at most; anything larger is not one. */
const MAX_INDEX_BYTES = 1 << 20;

const size = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const plainFileName = z
  .string()
  .min(1)
  .refine((name) => isPlainFileName(name), 'expected a plain file name, without directories');

const splitIndexSchema: z.ZodType<SplitIndex> = z.object({
  kind: z.literal(SPLIT_INDEX_KIND),
  formatVersion: z.literal(SPLIT_INDEX_FORMAT_VERSION),
  tar: z.object({ file: plainFileName, size }),
  partSize: size.min(1),
  parts: z
    .array(
      z.object({
        number: z.number().int().min(1).max(MAX_SPLIT_PARTS),
        file: plainFileName,
        offset: size,
        size: size.min(1),
        sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits'),
      }),
    )
    .min(1)
    .max(MAX_SPLIT_PARTS),
});

/** The index as written to disk: stable member order, so the same parts give the same bytes. */
export function encodeSplitIndex(index: SplitIndex): Buffer {
  const ordered = {
    kind: index.kind,
    formatVersion: index.formatVersion,
    tar: { file: index.tar.file, size: index.tar.size },
    partSize: index.partSize,
    parts: index.parts.map((part) => ({
      number: part.number,
      file: part.file,
      offset: part.offset,
      size: part.size,
      sha256: part.sha256,
    })),
  };
  return Buffer.from(`${JSON.stringify(ordered, null, 2)}\n`, 'utf8');
}

/** `<hex>  <part file>` lines, so `sha256sum -c <tar>.parts.sha256` checks the parts without apertus. */
export function encodePartChecksums(index: SplitIndex): Buffer {
  return Buffer.from(
    formatChecksums(index.parts.map((part) => ({ path: part.file, digest: `sha256:${part.sha256}` }))),
    'utf8',
  );
}

/** Checks that the parts tile the tar exactly; returns what is wrong, or undefined. */
export function splitIndexProblem(index: SplitIndex): string | undefined {
  let offset = 0;
  for (const [position, part] of index.parts.entries()) {
    const number = position + 1;
    const last = number === index.parts.length;
    if (part.number !== number) return `part ${number} is numbered ${part.number}`;
    if (part.file !== splitPartFileName(index.tar.file, number)) {
      return `part ${number} is named "${part.file}", expected "${splitPartFileName(index.tar.file, number)}"`;
    }
    if (part.offset !== offset) return `part ${number} starts at byte ${part.offset}, expected ${offset}`;
    if (last ? part.size > index.partSize : part.size !== index.partSize) {
      return `part ${number} is ${part.size} bytes; the part size is ${index.partSize}`;
    }
    offset += part.size;
  }
  if (offset !== index.tar.size) return `the parts hold ${offset} bytes, the tar is ${index.tar.size}`;
  return undefined;
}

/** Reads and checks an index file; throws ApertusError 'bundle-split-index-invalid' when it is not one. */
export async function readSplitIndex(indexPath: string): Promise<SplitIndex> {
  const invalid = (why: string, cause?: unknown): ApertusError =>
    new ApertusError('bundle-split-index-invalid', `${indexPath} is not a valid split-bundle index: ${why}`, {
      hint: 'Copy the .parts.json file again from the medium it came on; `apertus bundle --split` and `apertus split` write it next to the parts.',
      cause,
    });
  let bytes: Buffer;
  const handle = await open(indexPath, 'r').catch((error: unknown) => {
    throw new ApertusError(
      'bundle-not-found',
      `cannot open split-bundle index ${indexPath}: ${(error as Error).message}`,
      {
        hint: 'Check the path; a split bundle is opened by its <name>-<version>.tar.parts.json file.',
        cause: error,
      },
    );
  });
  try {
    const { size: fileSize } = await handle.stat();
    if (fileSize > MAX_INDEX_BYTES) throw invalid(`it is ${fileSize} bytes, an index is a few KB`);
    bytes = await handle.readFile();
  } finally {
    await handle.close();
  }
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw invalid('it is not valid JSON', error);
  }
  const version = (raw as { formatVersion?: unknown } | null)?.formatVersion;
  if (typeof version === 'number' && version > SPLIT_INDEX_FORMAT_VERSION) {
    throw new ApertusError(
      'bundle-format-newer',
      `${indexPath} has split-index format ${version}; this apertus reads up to ${SPLIT_INDEX_FORMAT_VERSION}`,
      { hint: 'Install a newer apertus to read this bundle.' },
    );
  }
  const parsed = splitIndexSchema.safeParse(raw);
  if (!parsed.success) throw invalid(describeIssues(parsed.error));
  const problem = splitIndexProblem(parsed.data);
  if (problem !== undefined) throw invalid(problem);
  return parsed.data;
}

/**
 * The index to open for `path`, or undefined when `path` is not a split bundle:
 * - `<tar>.parts.json` is the index itself;
 * - `<tar>` that does not exist, with `<tar>.parts.json` next to it, means the split
 *   bundle (so `apertus verify out/x.tar` works whichever way x was written);
 * - an existing file or directory is a bundle of its own, split or not.
 * A single part is refused with the index to pass instead.
 */
export async function findSplitIndex(path: string): Promise<string | undefined> {
  const name = basename(path);
  if (tarFileNameOfSplitIndex(name) !== undefined) return path;
  const existing = await stat(path).catch(() => undefined);
  const tarOfPart = tarFileNameOfSplitPart(name);
  if (tarOfPart !== undefined) {
    const index = join(dirname(path), splitIndexFileName(tarOfPart));
    if (await isFile(index)) {
      throw new ApertusError('bundle-split-part', `${path} is one part of a split bundle, not a bundle`, {
        hint: `Pass the split bundle's index instead: ${index}`,
      });
    }
  }
  if (existing !== undefined) return undefined;
  const index = join(dirname(path), splitIndexFileName(name));
  return (await isFile(index)) ? index : undefined;
}

/** What a part of a split bundle is, as a person copying media says it. */
export function describePart(index: SplitIndex, part: SplitPart): string {
  return `part ${part.number} of ${index.parts.length}: ${part.file}`;
}

export const COPY_PART_AGAIN = 'copy this part again from its medium';

/**
 * The parts as one ByteSource, each opened in place. Throws ApertusError naming the
 * part when one is missing or has the wrong size (hashes are verify's job).
 */
export async function openSplitParts(indexPath: string, index: SplitIndex): Promise<ByteSource> {
  const directory = dirname(indexPath);
  const sources: ByteSource[] = [];
  try {
    for (const part of index.parts) {
      const path = join(directory, part.file);
      const source = await openFileByteSource(path).catch((error: unknown) => {
        throw new ApertusError(
          'bundle-part-missing',
          `${describePart(index, part)} cannot be opened (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}) — ${COPY_PART_AGAIN}`,
          {
            hint: `Put ${part.file} next to ${basename(indexPath)}, then run \`apertus verify ${indexPath}\`.`,
            cause: error,
          },
        );
      });
      sources.push(source);
      if (source.size !== part.size) {
        throw new ApertusError(
          'bundle-part-size',
          `${describePart(index, part)} is ${source.size} bytes, the index says ${part.size} — ${COPY_PART_AGAIN}`,
          { hint: `Copy ${part.file} again, then run \`apertus verify ${indexPath}\`.` },
        );
      }
    }
  } catch (error) {
    await Promise.all(sources.map((source) => source.close().catch(() => {})));
    throw error;
  }
  const first = index.parts[0]?.file ?? index.tar.file;
  const description =
    index.parts.length === 1 ? first : `${first}..${String(index.parts.length).padStart(3, '0')}`;
  return concatByteSources(sources, join(directory, description));
}

function isPlainFileName(name: string): boolean {
  return name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\\') && !name.includes('\0');
}

async function isFile(path: string): Promise<boolean> {
  const stats = await stat(path).catch(() => undefined);
  return stats?.isFile() ?? false;
}
