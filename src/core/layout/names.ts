/**
 * The only place that names paths inside a bundle (STYLE.md 4). Everything else asks
 * this module for a path, so the layout can change in one file.
 */
import { ApertusError } from '../errors.js';

export const OCI_LAYOUT_FILE = 'oci-layout';
export const INDEX_FILE = 'index.json';
export const CHECKSUMS_FILE = 'SHA256SUMS';
export const SIGNATURE_FILE = 'SHA256SUMS.minisig';
export const BLOBS_DIR = 'blobs';
export const BLOBS_SHA256_DIR = 'blobs/sha256';

/** Content of `oci-layout`, exactly as written (image-spec image-layout.md). */
/** The CLI a bundle carries, outside the OCI layout: `tar -xf BUNDLE.tar apertus/`. */
export const CLI_DIR = 'apertus';
/** Paths inside CLI_DIR. */
export const CLI_PATHS = { launcher: 'bin/apertus', node: 'node/bin/node', cliDir: 'cli' } as const;

export const OCI_LAYOUT_CONTENT = '{"imageLayoutVersion":"1.0.0"}';
export const OCI_LAYOUT_VERSION = '1.0.0';

/** Files that are not covered by SHA256SUMS: the list itself and its signature. */
export const UNCHECKED_FILES: ReadonlySet<string> = new Set([CHECKSUMS_FILE, SIGNATURE_FILE]);

const HEX_PATTERN = /^[0-9a-f]{64}$/;
const DIGEST_PATTERN = /^sha256:[0-9a-f]{64}$/;
const BLOB_PATH_PATTERN = /^blobs\/sha256\/([0-9a-f]{64})$/;

export function isDigest(value: string): boolean {
  return DIGEST_PATTERN.test(value);
}

export function isHex(value: string): boolean {
  return HEX_PATTERN.test(value);
}

/** 'sha256:<hex>' -> '<hex>'; only lowercase sha256 digests are part of the format. */
export function hexFromDigest(digest: string): string {
  if (!isDigest(digest)) {
    throw new ApertusError('bundle-bad-digest', `"${digest}" is not a sha256 digest`, {
      hint: 'Digests in an apertus bundle are written "sha256:" followed by 64 lowercase hex digits.',
    });
  }
  return digest.slice('sha256:'.length);
}

export function blobPath(digest: string): string {
  return `${BLOBS_SHA256_DIR}/${hexFromDigest(digest)}`;
}

/** The digest a path names when it is a blob path, else undefined. */
export function digestFromBlobPath(path: string): string | undefined {
  const match = BLOB_PATH_PATTERN.exec(path);
  return match?.[1] === undefined ? undefined : `sha256:${match[1]}`;
}

/** `<name>-<version>.tar`, the one file a bundle is written as. */
export function bundleFileName(name: string, version: string): string {
  return `${name}-${version}.tar`;
}

/**
 * A delta bundle's file (`bundle --since`): `<name>-<version>-since-<baseVersion>.tar`, or
 * `<name>-<version>-delta.tar` when the base is a list of digests, so it never takes the
 * full bundle's name.
 */
export function deltaBundleFileName(name: string, version: string, baseVersion: string | null): string {
  return `${name}-${version}-${baseVersion === null ? 'delta' : `since-${baseVersion}`}.tar`;
}

/**
 * Normalises a relative path as stored in a tar or a layer title ('./a//b/' -> 'a/b'),
 * or returns undefined when it could escape the directory it is extracted into:
 * absolute, a '..' component, empty, or a NUL byte.
 */
export function confinedRelativePath(path: string): string | undefined {
  if (path.length === 0 || path.startsWith('/') || path.includes('\0')) return undefined;
  const parts: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') return undefined;
    parts.push(part);
  }
  return parts.length === 0 ? undefined : parts.join('/');
}

/*
 * A split bundle (DESIGN.md section 2) sits next to where its tar would be:
 *   <tar>.part-001, <tar>.part-002, ...   the tar cut into consecutive pieces
 *   <tar>.parts.sha256                     the parts' hashes, for `sha256sum -c` on the medium
 *   <tar>.parts.json                       the index, written last: a split bundle is complete when it exists
 * Names derive from the tar's file name, so `apertus split x.tar` and `apertus bundle --split`
 * name the same bundle's parts alike.
 */
const SPLIT_PART_INFIX = '.part-';
const SPLIT_INDEX_SUFFIX = '.parts.json';
const SPLIT_CHECKSUMS_SUFFIX = '.parts.sha256';
/** Part numbers have three digits, so the parts sort in order in every file listing. */
export const MAX_SPLIT_PARTS = 999;

/** `<tar>.part-NNN`, numbered from 1. */
export function splitPartFileName(tarFileName: string, number: number): string {
  if (!Number.isInteger(number) || number < 1 || number > MAX_SPLIT_PARTS) {
    throw new RangeError(`part number ${number} is outside 1..${MAX_SPLIT_PARTS}`);
  }
  return `${tarFileName}${SPLIT_PART_INFIX}${String(number).padStart(3, '0')}`;
}

export function splitIndexFileName(tarFileName: string): string {
  return `${tarFileName}${SPLIT_INDEX_SUFFIX}`;
}

export function splitChecksumsFileName(tarFileName: string): string {
  return `${tarFileName}${SPLIT_CHECKSUMS_SUFFIX}`;
}

/** The tar file name an index file name belongs to ('x.tar.parts.json' -> 'x.tar'), else undefined. */
export function tarFileNameOfSplitIndex(fileName: string): string | undefined {
  if (!fileName.endsWith(SPLIT_INDEX_SUFFIX) || fileName.length === SPLIT_INDEX_SUFFIX.length)
    return undefined;
  return fileName.slice(0, -SPLIT_INDEX_SUFFIX.length);
}

/** The part number `fileName` has as a part of `tarFileName`, else undefined. */
export function splitPartNumber(tarFileName: string, fileName: string): number | undefined {
  const prefix = `${tarFileName}${SPLIT_PART_INFIX}`;
  if (!fileName.startsWith(prefix)) return undefined;
  const digits = fileName.slice(prefix.length);
  if (!/^[0-9]{3}$/.test(digits)) return undefined;
  const number = Number(digits);
  return number >= 1 ? number : undefined;
}

/** The tar file name a part file name belongs to ('x.tar.part-002' -> 'x.tar'), else undefined. */
export function tarFileNameOfSplitPart(fileName: string): string | undefined {
  const match = /^(.+)\.part-[0-9]{3}$/.exec(fileName);
  return match?.[1];
}
