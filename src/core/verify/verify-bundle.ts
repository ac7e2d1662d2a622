/**
 * Verifies a bundle in one pass: every byte is read and hashed once. First the small
 * metadata (SHA256SUMS, its signature, index.json, manifests, config) is read and
 * hashed from memory while the manifest graph is checked; then every other file is
 * streamed and hashed in storage order (sequential reads of the tar).
 *
 * A split bundle's parts are checked first, each against the index (size and sha256),
 * so a bad medium is named by its part; only when every part is good are the contents
 * checked, read through the parts in place. (With a bad or missing part the contents
 * cannot be trusted or read, and the operator's next step is the same: copy that part.)
 *
 * Results are data, one per subject (a bundle path, or a part's file name). A bad bundle never throws; only
 * input that cannot be read at all (no such file, not a tar) does.
 *
 * Signature policy: with a public key, the signature must be present and valid
 * ('missing' or 'bad-signature' otherwise). Without one, the signature is not checked
 * and the result for SHA256SUMS.minisig is 'unsigned', which does not make `ok` false:
 * integrity is proven, authenticity is not. Callers that require a signature pass a key.
 */
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { isApertusError } from '../errors.js';
import { type BundleReader, openBundle } from '../layout/bundle-reader.js';
import { parseChecksums } from '../layout/checksums.js';
import { entryByteSource } from '../layout/entry-source.js';
import { type LoadedBundle, readBundleGraph } from '../layout/load-bundle.js';
import { layerPlacement } from '../layout/media-types.js';
import {
  blobPath,
  CHECKSUMS_FILE,
  digestFromBlobPath,
  SIGNATURE_FILE,
  UNCHECKED_FILES,
} from '../layout/names.js';
import { findSplitIndex, readSplitIndex } from '../layout/split-index.js';
import { readTarIndex } from '../layout/tar-index.js';
import { noProgress, type RunOptions } from '../progress.js';
import { type PublicKey, parsePublicKey, readPublicKey } from '../sign/keys.js';
import { parseSignature, verifySignature } from '../sign/minisign.js';
import { verifySplitParts } from './verify-parts.js';

export type VerifyStatus =
  | 'ok'
  | 'missing'
  | 'digest-mismatch'
  | 'unlisted'
  | 'bad-signature'
  | 'unsigned'
  | 'invalid'
  /** A layer blob a delta bundle leaves out on purpose: its base release holds it. */
  | 'in-base';

export interface VerifyResult {
  /** A path inside the bundle ('blobs/sha256/<hex>', 'SHA256SUMS.minisig'), a part of a split bundle (its file name), or the bundle itself. */
  subject: string;
  status: VerifyStatus;
  detail: string;
}

export interface VerifyBundleOptions extends RunOptions {
  /** The key the signature must verify with: parsed, or a .pub file's text / base64 line. */
  publicKey?: PublicKey | string | undefined;
  /** A minisign .pub file; used when publicKey is not given. */
  publicKeyPath?: string | undefined;
  /**
   * Leave files of at least this many bytes unhashed: check only that each is listed in
   * SHA256SUMS, a blob under the digest its name says, and leave its contents to the one who
   * reads it next (install hashes each blob as it sends it). The metadata (SHA256SUMS,
   * signature, index, manifests, configs) and smaller files are hashed as always.
   */
  deferFromBytes?: number | undefined;
}

export interface BundleVerification {
  /** No result other than 'ok', 'unsigned' and 'in-base'. */
  ok: boolean;
  /** The signature was checked against the given key and is valid. */
  signed: boolean;
  /** Key id the signature names (checked or not), if there is one. */
  keyId: string | null;
  /** The bundle manifest digest from index.json, if the graph could be read. */
  manifestDigest: string | null;
  /** Parts first (for a split bundle), then the bundle's files. */
  results: VerifyResult[];
  /** For a split bundle: its index and parts; null for a tar or a directory. */
  split: SplitVerification | null;
  /** With deferFromBytes: the files listed but not hashed here. */
  deferred?: { files: number; bytes: number };
}

export interface SplitVerification {
  /** The index file the parts were checked against. */
  index: string;
  parts: number;
  /** Parts missing, of the wrong size or with the wrong sha256. */
  badParts: number;
  /** False when a bad part stopped the check before the bundle's files were read. */
  contentsChecked: boolean;
}

/** Reader errors that describe a damaged or hostile bundle rather than unreadable input. */
const BAD_BUNDLE_CODES = new Set([
  'bundle-unsafe-entry',
  'bundle-corrupt',
  'bundle-truncated',
  'bundle-part-missing',
  'bundle-part-size',
]);
/** Statuses that do not fail a verification: the signature unchecked for want of a key, a delta's blob in its base. */
export const PASSING_STATUSES: ReadonlySet<VerifyStatus> = new Set(['ok', 'unsigned', 'in-base']);
const PROGRESS_EVERY = 32 << 20;
const MAX_SIGNATURE_BYTES = 64 << 10;

export async function verifyBundle(
  path: string,
  options: VerifyBundleOptions = {},
): Promise<BundleVerification> {
  const verified = await verifyAndOpen(path, options, false);
  return verified.verification;
}

/** What a verified bundle that is kept open offers its one reader: install reads everything through it. */
export interface OpenedBundle {
  reader: BundleReader;
  /** The manifest graph, when it could be read (always, when the verification is ok). */
  bundle: LoadedBundle | undefined;
  /** SHA256SUMS and its signature as read (null when absent): the host judges the signer itself. */
  sums: Buffer | null;
  signatureText: string | null;
}

/**
 * Verifies a bundle and keeps it open: one open and one pass over every byte for
 * everything a command does with the bundle afterwards. The caller closes `reader`.
 * `opened` is null when the bundle could not be opened at all (a bad part, a broken tar).
 */
export async function verifyBundleKeepOpen(
  path: string,
  options: VerifyBundleOptions = {},
): Promise<{ verification: BundleVerification; opened: OpenedBundle | null }> {
  return verifyAndOpen(path, options, true);
}

async function verifyAndOpen(
  path: string,
  options: VerifyBundleOptions,
  keepOpen: boolean,
): Promise<{ verification: BundleVerification; opened: OpenedBundle | null }> {
  const { signal } = options;
  const onProgress = options.onProgress ?? noProgress;
  const publicKey = await resolvePublicKey(options);
  const failed = (results: VerifyResult[], split: SplitVerification | null = null) => ({
    verification: { ok: false, signed: false, keyId: null, manifestDigest: null, results, split },
    opened: null,
  });

  const indexPath = await findSplitIndex(path);
  let split: SplitVerification | null = null;
  let partResults: VerifyResult[] = [];
  if (indexPath !== undefined) {
    let index: Awaited<ReturnType<typeof readSplitIndex>>;
    try {
      index = await readSplitIndex(indexPath);
    } catch (error) {
      if (isApertusError(error) && error.code === 'bundle-split-index-invalid') {
        return failed([{ subject: basename(indexPath), status: 'invalid', detail: error.message }]);
      }
      throw error;
    }
    partResults = await verifySplitParts(indexPath, index, { signal, onProgress });
    const badParts = partResults.filter((result) => result.status !== 'ok').length;
    split = { index: indexPath, parts: index.parts.length, badParts, contentsChecked: badParts === 0 };
    if (badParts > 0) return failed(partResults, split);
  }

  let reader: BundleReader;
  try {
    reader = await openBundle(indexPath ?? path, signal ? { signal } : {});
  } catch (error) {
    if (isApertusError(error) && BAD_BUNDLE_CODES.has(error.code)) {
      return failed([...partResults, { subject: path, status: 'invalid', detail: error.message }], split);
    }
    throw error;
  }
  let keep = false;
  try {
    const { extras, ...verification } = await verifyOpened(reader, publicKey, {
      signal,
      onProgress,
      deferFromBytes: options.deferFromBytes,
    });
    keep = keepOpen;
    return {
      verification: { ...verification, results: [...partResults, ...verification.results], split },
      opened: keepOpen ? { reader, ...extras } : null,
    };
  } finally {
    if (!keep) await reader.close();
  }
}

async function verifyOpened(
  reader: BundleReader,
  publicKey: PublicKey | undefined,
  {
    signal,
    onProgress,
    deferFromBytes,
  }: {
    signal: AbortSignal | undefined;
    onProgress: NonNullable<RunOptions['onProgress']>;
    deferFromBytes: number | undefined;
  },
): Promise<Omit<BundleVerification, 'split'> & { extras: Omit<OpenedBundle, 'reader'> }> {
  const results = new Map<string, VerifyResult>();
  /** One result per subject: the first problem found sets the status, later ones add detail. */
  const report = (subject: string, status: VerifyStatus, detail: string): void => {
    const existing = results.get(subject);
    if (existing === undefined || existing.status === 'ok') results.set(subject, { subject, status, detail });
    else if (status !== 'ok') existing.detail = `${existing.detail}; ${detail}`;
  };
  const actual = new Map<string, string>();
  const record = (path: string, bytes: Buffer): void => {
    actual.set(path, `sha256:${createHash('sha256').update(bytes).digest('hex')}`);
  };

  // Phase 1: metadata, hashed from the bytes that are parsed.
  const sumsBytes = await readSmall(reader, CHECKSUMS_FILE, report);
  const signatureBytes = await readSmall(reader, SIGNATURE_FILE, report, MAX_SIGNATURE_BYTES);
  const graph = await readBundleGraph(reader, { onRead: record });

  // Phase 2: everything else, streamed in storage order (or, deferred, only listed).
  const rest = reader.entries.filter((entry) => !actual.has(entry.path) && !UNCHECKED_FILES.has(entry.path));
  const isDeferred = (entry: { size: number }) =>
    deferFromBytes !== undefined && entry.size >= deferFromBytes;
  const deferred = rest.filter(isDeferred);
  const pending = rest.filter((entry) => !isDeferred(entry));
  const total = pending.reduce((sum, entry) => sum + entry.size, 0);
  let done = 0;
  let reported = 0;
  onProgress({
    step: 'verify.hash',
    status: 'info',
    detail: `hashing ${pending.length} files`,
    bytes: { done, total },
  });
  for (const entry of pending) {
    signal?.throwIfAborted();
    const hash = createHash('sha256');
    try {
      for await (const chunk of reader.createReadStream(entry)) {
        signal?.throwIfAborted();
        hash.update(chunk as Buffer);
        done += (chunk as Buffer).length;
        if (done - reported >= PROGRESS_EVERY) {
          reported = done;
          onProgress({ step: 'verify.hash', status: 'info', bytes: { done, total } });
        }
      }
      actual.set(entry.path, `sha256:${hash.digest('hex')}`);
    } catch (error) {
      if (signal?.aborted) throw error;
      report(entry.path, 'invalid', `cannot be read: ${(error as Error).message}`);
    }
  }
  onProgress({ step: 'verify.hash', status: 'info', bytes: { done: total, total } });

  // Signature first in the results: it decides whether the rest can be trusted.
  const signature = checkSignature(sumsBytes, signatureBytes, publicKey);
  report(SIGNATURE_FILE, signature.status, signature.detail);

  const listed = checkChecksums(reader, sumsBytes, actual, report);
  checkDeferred(deferred, sumsBytes, report);
  for (const entry of reader.entries) {
    if (UNCHECKED_FILES.has(entry.path)) continue;
    const digest = actual.get(entry.path);
    if (digest === undefined) continue;
    const named = digestFromBlobPath(entry.path);
    if (named !== undefined && named !== digest) {
      report(entry.path, 'digest-mismatch', `content is ${digest}, the blob's name says ${named}`);
    }
    if (listed === undefined) {
      if (named === undefined)
        report(entry.path, 'unlisted', 'not covered by any checksum: SHA256SUMS is missing');
      else report(entry.path, 'ok', 'content matches its blob name');
    } else if (!listed.has(entry.path)) {
      report(entry.path, 'unlisted', 'not listed in SHA256SUMS; no checksum or signature covers it');
    }
  }
  for (const problem of graph.problems) report(problem.subject, problem.status, problem.detail);
  await checkTarLayers(reader, graph.bundle, report, signal);
  const base = graph.bundle?.config.delta?.base;
  for (const [digest, size] of graph.bundle?.omitted ?? []) {
    report(
      blobPath(digest),
      'in-base',
      `${size} bytes left out of this delta: ${base ? `${base.name} ${base.version} (${base.manifestDigest})` : 'the host it was cut for'} holds it`,
    );
  }

  const all = [...results.values()];
  return {
    ok: all.every((result) => PASSING_STATUSES.has(result.status)),
    signed: signature.valid,
    keyId: signature.keyId,
    manifestDigest: graph.bundle?.manifestDigest ?? null,
    results: all,
    ...(deferFromBytes !== undefined
      ? { deferred: { files: deferred.length, bytes: deferred.reduce((sum, entry) => sum + entry.size, 0) } }
      : {}),
    extras: {
      bundle: graph.bundle,
      sums: sumsBytes ?? null,
      signatureText: signatureBytes?.toString('utf8') ?? null,
    },
  };
}

async function readSmall(
  reader: BundleReader,
  path: string,
  report: (subject: string, status: VerifyStatus, detail: string) => void,
  maxBytes?: number,
): Promise<Buffer | undefined> {
  if (reader.get(path) === undefined) return undefined;
  try {
    return await reader.readBytes(path, maxBytes === undefined ? {} : { maxBytes });
  } catch (error) {
    report(path, 'invalid', (error as Error).message);
    return undefined;
  }
}

function checkSignature(
  sumsBytes: Buffer | undefined,
  signatureBytes: Buffer | undefined,
  publicKey: PublicKey | undefined,
): { status: VerifyStatus; detail: string; valid: boolean; keyId: string | null } {
  const parsed = signatureBytes === undefined ? undefined : parseSignature(signatureBytes.toString('utf8'));
  const keyId = parsed !== undefined && !('error' in parsed) ? parsed.keyId : null;
  if (publicKey === undefined) {
    const detail =
      signatureBytes === undefined
        ? 'the bundle is not signed'
        : `signature${keyId === null ? '' : ` by key ${keyId}`} present but not checked: no public key given`;
    return { status: 'unsigned', detail, valid: false, keyId };
  }
  if (signatureBytes === undefined) {
    return {
      status: 'missing',
      detail: `a signature by key ${publicKey.keyId} is required, the bundle has none`,
      valid: false,
      keyId,
    };
  }
  if (sumsBytes === undefined) {
    return {
      status: 'bad-signature',
      detail: 'SHA256SUMS, the file it signs, is missing',
      valid: false,
      keyId,
    };
  }
  const check = verifySignature(sumsBytes, signatureBytes.toString('utf8'), publicKey);
  if (!check.valid) return { status: 'bad-signature', detail: check.reason, valid: false, keyId };
  return {
    status: 'ok',
    detail: `SHA256SUMS signed by key ${check.keyId}; trusted comment: ${check.trustedComment}`,
    valid: true,
    keyId,
  };
}

/** Compares every listed file with its hash; returns the listed paths, or undefined without a list. */
function checkChecksums(
  reader: BundleReader,
  sumsBytes: Buffer | undefined,
  actual: Map<string, string>,
  report: (subject: string, status: VerifyStatus, detail: string) => void,
): Set<string> | undefined {
  if (sumsBytes === undefined) {
    if (reader.get(CHECKSUMS_FILE) === undefined) {
      report(CHECKSUMS_FILE, 'missing', 'no checksum list: blobs were checked against their names only');
    }
    return undefined;
  }
  const parsed = parseChecksums(sumsBytes.toString('utf8'));
  report(
    CHECKSUMS_FILE,
    parsed.problems.length === 0 ? 'ok' : 'invalid',
    parsed.problems.length === 0
      ? `${parsed.digests.size} files listed`
      : parsed.problems.slice(0, 5).join('; '),
  );
  for (const [path, expected] of parsed.digests) {
    if (UNCHECKED_FILES.has(path)) continue;
    const got = actual.get(path);
    if (reader.get(path) === undefined) report(path, 'missing', `listed in SHA256SUMS, not in the bundle`);
    else if (got === undefined) continue;
    else if (got !== expected)
      report(path, 'digest-mismatch', `content is ${got}, SHA256SUMS says ${expected}`);
    else report(path, 'ok', expected);
  }
  return new Set(parsed.digests.keys());
}

/**
 * Files left unhashed must still be covered by the signed list: each listed, and each blob
 * listed under the digest its name says, which is what its reader checks the bytes against.
 */
function checkDeferred(
  entries: readonly { path: string }[],
  sumsBytes: Buffer | undefined,
  report: (subject: string, status: VerifyStatus, detail: string) => void,
): void {
  const listed = sumsBytes === undefined ? undefined : parseChecksums(sumsBytes.toString('utf8')).digests;
  for (const { path } of entries) {
    const named = digestFromBlobPath(path);
    const sum = listed?.get(path);
    if (sum === undefined) {
      if (listed !== undefined || named === undefined)
        report(path, 'unlisted', 'not listed in SHA256SUMS; no checksum or signature covers it');
    } else if (named !== undefined && sum !== named) {
      report(path, 'digest-mismatch', `SHA256SUMS says ${sum}, the blob's name says ${named}`);
    }
  }
}

async function resolvePublicKey(options: VerifyBundleOptions): Promise<PublicKey | undefined> {
  if (typeof options.publicKey === 'string') return parsePublicKey(options.publicKey);
  if (options.publicKey !== undefined) return options.publicKey;
  if (options.publicKeyPath !== undefined) return readPublicKey(options.publicKeyPath);
  return undefined;
}

/**
 * Tar layers are extracted on the host: every entry must stay inside its directory and
 * be a plain file or directory, whatever the extracting tar would allow.
 */
async function checkTarLayers(
  reader: BundleReader,
  bundle: LoadedBundle | undefined,
  report: (subject: string, status: VerifyStatus, detail: string) => void,
  signal: AbortSignal | undefined,
): Promise<void> {
  for (const component of bundle?.components ?? []) {
    for (const layer of component.layers) {
      if (layerPlacement(layer.mediaType) !== 'tar') continue;
      const entry = reader.get(blobPath(layer.digest));
      if (!entry) continue; // reported missing by the graph check
      try {
        await readTarIndex(entryByteSource(reader, entry), signal);
      } catch (error) {
        if (signal?.aborted) throw error;
        report(entry.path, 'invalid', `tar layer of ${component.name}: ${(error as Error).message}`);
      }
    }
  }
}
