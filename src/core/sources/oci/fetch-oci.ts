/**
 * Download of a resolved `oci:` image into apertus's cache, one content-addressed store that
 * every image shares (a base layer common to two images is fetched once):
 *
 *   <cacheDir>/oci/blobs/sha256/<hex>            verified blobs only (manifest, config, layers)
 *   <cacheDir>/oci/blobs/sha256/<hex>.partial    an interrupted download
 *
 * Blobs download a few at a time; a `.partial` resumes with `Range: bytes=N-` (runtime-facts
 * §5.1 step 6) and starts over when the registry ignores the range. Every blob is hashed
 * while it is written and gets its final name only when its sha256 matches its digest; one
 * that does not is deleted and refused. An abort leaves the `.partial` files for the next run.
 */

import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApertusError, isApertusError } from '../../errors.js';
import { noProgress } from '../../progress.js';
import { mapPool } from '../map-pool.js';
import { retryDelayMs } from '../retry.js';
import type { FetchedFile, ResolvedSource, SourceContext } from '../types.js';
import { imageManifestSchema } from './image-schemas.js';
import {
  createRegistryClient,
  describeNetworkError,
  discard,
  isRetryableRegistryError,
  type RegistryClient,
  RegistryUnavailableError,
} from './registry-client.js';
import type { RegistryCredentials } from './registry-credentials.js';
import { isOciResolvedSource, type OciImageBlob, type OciResolvedSource } from './resolve-oci.js';

export type OciBlobOrigin = 'downloaded' | 'cache';

export interface OciFetchedFile extends FetchedFile {
  digest: string;
  mediaType: string;
  origin: OciBlobOrigin;
  /** Bytes this run received over the network for the blob (0 when reused). */
  downloadedBytes: number;
}

/** Everything the bundle needs to store the image: see image-archive.ts for the host side. */
export interface FetchedOciImage {
  /** The name:tag the image is loaded as on a host. */
  repoTag: string;
  /** The image manifest, byte for byte as the registry served it (verified), in the cache. */
  manifest: OciImageBlob & { localPath: string };
  config: OciFetchedFile;
  /** In manifest order; the same file twice when the manifest lists a layer twice. */
  layers: OciFetchedFile[];
  /** The config, then each distinct layer, in `resolved.files` order. */
  files: OciFetchedFile[];
}

export interface FetchOciOptions {
  /** Blobs downloaded at the same time. */
  concurrency?: number;
  /** Tries per blob when the connection breaks or the registry fails; each resumes where the last stopped. */
  attempts?: number;
  credentials?: RegistryCredentials;
}

export const DEFAULT_CONCURRENCY = 3;
const DEFAULT_ATTEMPTS = 5;
const PROGRESS_EVERY = 4 * 1024 * 1024;
export const PARTIAL_SUFFIX = '.partial';

/** Where a verified blob lives in the cache. */
export function ociBlobCachePath(cacheDir: string, digest: string): string {
  const hex = /^sha256:([0-9a-f]{64})$/.exec(digest)?.[1];
  if (hex === undefined) {
    throw new ApertusError('oci-source-invalid', `"${digest}" is not a sha256 digest.`, {
      hint: 'Resolve the source again with apertus instead of editing what it returned.',
    });
  }
  return join(cacheDir, 'oci', 'blobs', 'sha256', hex);
}

/** The config and layer files (`FetchedFile`s); `fetchOciImage` returns the manifest as well. */
export async function fetchOci(
  resolved: ResolvedSource,
  ctx: SourceContext,
  options: FetchOciOptions = {},
): Promise<OciFetchedFile[]> {
  return (await fetchOciImage(resolved, ctx, options)).files;
}

export async function fetchOciImage(
  resolved: ResolvedSource,
  ctx: SourceContext,
  options: FetchOciOptions = {},
): Promise<FetchedOciImage> {
  if (!isOciResolvedSource(resolved)) {
    throw new ApertusError('oci-source-unpinned', `${resolved.source} is not a resolved oci: source.`, {
      hint: 'Resolve the source first (resolveOci) and fetch what it returns.',
    });
  }
  const onProgress = ctx.onProgress ?? noProgress;
  const client = await createRegistryClient({
    reference: resolved.reference,
    env: ctx.env,
    ...(options.credentials ? { credentials: options.credentials } : {}),
  });
  const label = resolved.pinned;

  // The manifest is fetched by digest, so it is exactly the resolved one, and stored as is.
  const manifest = await obtainManifest(resolved, client, ctx);

  const blobs = resolved.files.map((file) => {
    const blob = [resolved.config, ...resolved.layers].find((candidate) => candidate.digest === file.digest);
    if (blob === undefined || blob.size !== file.size) {
      throw new ApertusError('oci-source-invalid', `${label}: ${file.path} is not a blob of the image.`, {
        hint: 'Resolve the source again with apertus instead of editing what it returned.',
      });
    }
    return blob;
  });
  const total = blobs.reduce((sum, blob) => sum + blob.size, 0);
  let done = 0;
  let reported = 0;
  const advance = (bytes: number, force = false) => {
    done += bytes;
    if (force || Math.abs(done - reported) >= PROGRESS_EVERY) {
      reported = done;
      onProgress({ step: 'fetch', status: 'info', bytes: { done, total }, detail: label });
    }
  };
  onProgress({
    step: 'fetch',
    status: 'start',
    detail: `${label}: ${blobs.length} blobs, ${total} bytes`,
    bytes: { done: 0, total },
  });

  // One failure stops the other downloads (their .partial files stay for the next run).
  const controller = new AbortController();
  const onOuterAbort = () => controller.abort(ctx.signal?.reason);
  if (ctx.signal?.aborted) onOuterAbort();
  ctx.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const job: BlobJob = {
    client,
    cacheDir: ctx.cacheDir,
    signal: controller.signal,
    advance,
    attempts: Math.max(1, options.attempts ?? DEFAULT_ATTEMPTS),
  };
  let files: OciFetchedFile[];
  try {
    // Largest first, so one big layer does not start last and run alone.
    const order = blobs.map((_, index) => index).sort((a, b) => blobs[b]!.size - blobs[a]!.size);
    const inOrder = await mapPool(order, options.concurrency ?? DEFAULT_CONCURRENCY, controller, (index) =>
      obtainBlob(blobs[index]!, resolved.files[index]!.path, job),
    );
    files = new Array(blobs.length);
    inOrder.forEach((fetched, position) => {
      files[order[position]!] = fetched;
    });
  } finally {
    ctx.signal?.removeEventListener('abort', onOuterAbort);
  }

  const byDigest = new Map(files.map((file) => [file.digest, file]));
  const pick = (blob: OciImageBlob): OciFetchedFile => {
    const file = byDigest.get(blob.digest);
    if (file === undefined) {
      throw new ApertusError(
        'oci-source-invalid',
        `${label}: blob ${blob.digest} is missing from its file list.`,
        {
          hint: 'Resolve the source again with apertus instead of editing what it returned.',
        },
      );
    }
    return file;
  };
  const downloaded = files.filter((file) => file.origin === 'downloaded');
  onProgress({
    step: 'fetch',
    status: 'ok',
    detail: `${label}: ${downloaded.length} downloaded (${downloaded.reduce((sum, f) => sum + f.downloadedBytes, 0)} bytes), ${files.length - downloaded.length} reused from the cache`,
    bytes: { done: total, total },
  });
  return {
    repoTag: resolved.repoTag,
    manifest,
    config: pick(resolved.config),
    layers: resolved.layers.map(pick),
    files,
  };
}

async function obtainManifest(
  resolved: OciResolvedSource,
  client: RegistryClient,
  ctx: SourceContext,
): Promise<FetchedOciImage['manifest']> {
  const { digest } = resolved.manifest;
  const localPath = ociBlobCachePath(ctx.cacheDir, digest);
  let bytes: Buffer;
  try {
    const cached = await open(localPath, 'r');
    try {
      bytes = await cached.readFile();
    } finally {
      await cached.close();
    }
    if (`sha256:${createHash('sha256').update(bytes).digest('hex')}` !== digest) throw new Error('damaged');
  } catch {
    ctx.signal?.throwIfAborted();
    const fetched = await client.getManifest(digest, ctx.signal);
    bytes = fetched.bytes;
    await mkdir(dirname(localPath), { recursive: true });
    const partial = `${localPath}${PARTIAL_SUFFIX}`;
    await writeFile(partial, bytes);
    await rename(partial, localPath);
  }
  // The manifest must list exactly the blobs resolution recorded.
  const parsed = imageManifestSchema.safeParse(JSON.parse(bytes.toString('utf8')));
  const listed = parsed.success ? [parsed.data.config, ...parsed.data.layers].map((blob) => blob.digest) : [];
  const expected = [resolved.config, ...resolved.layers].map((blob) => blob.digest);
  if (listed.join(',') !== expected.join(',')) {
    throw new ApertusError(
      'oci-source-invalid',
      `${resolved.pinned}: its manifest does not list the resolved blobs.`,
      {
        hint: 'Resolve the source again with apertus instead of editing what it returned.',
      },
    );
  }
  return { ...resolved.manifest, localPath };
}

interface BlobJob {
  client: RegistryClient;
  cacheDir: string;
  signal: AbortSignal;
  advance: (bytes: number, force?: boolean) => void;
  attempts: number;
}

async function obtainBlob(blob: OciImageBlob, path: string, job: BlobJob): Promise<OciFetchedFile> {
  const { signal, advance } = job;
  const finalPath = ociBlobCachePath(job.cacheDir, blob.digest);
  const result = (origin: OciBlobOrigin, downloadedBytes = 0): OciFetchedFile => ({
    path,
    size: blob.size,
    digest: blob.digest,
    mediaType: blob.mediaType,
    localPath: finalPath,
    origin,
    downloadedBytes,
  });
  try {
    // Blobs only get their final name once verified; checking again still catches a cache
    // damaged on disk since.
    if ((await fileSize(finalPath)) === blob.size && (await hashFile(finalPath, signal)) === blob.digest) {
      advance(blob.size, true);
      return result('cache');
    }
    await rm(finalPath, { force: true });
    await mkdir(dirname(finalPath), { recursive: true });
    const downloadedBytes = await download(blob, `${finalPath}${PARTIAL_SUFFIX}`, job);
    await rename(`${finalPath}${PARTIAL_SUFFIX}`, finalPath);
    return result('downloaded', downloadedBytes);
  } catch (error) {
    signal.throwIfAborted();
    if (isApertusError(error)) throw error;
    throw new ApertusError(
      'fetch-write-failed',
      job.client.redact(
        `Cannot store blob ${blob.digest} in ${dirname(finalPath)}: ${describeNetworkError(error)}.`,
      ),
      {
        kind: 'operation',
        hint: 'Check free space and permissions there, or point the cache at another disk; the download resumes.',
        cause: error,
      },
    );
  }
}

/** Downloads into the .partial file, resuming and retrying; returns the bytes received. */
async function download(blob: OciImageBlob, partialPath: string, job: BlobJob): Promise<number> {
  const { signal, advance, client } = job;
  let received = 0;
  /** Bytes of this blob reported to progress so far (they go back down when a download restarts). */
  let counted = 0;
  for (let attempt = 1; ; attempt++) {
    try {
      let offset = (await fileSize(partialPath)) ?? 0;
      if (offset > blob.size) {
        await rm(partialPath, { force: true });
        offset = 0;
      }
      const hash = createHash('sha256');
      if (offset > 0) await hashPrefix(hash, partialPath, offset, signal);
      if (offset === blob.size) {
        // A complete .partial from an interrupted run: it only needs its check.
        const actual = `sha256:${hash.digest('hex')}`;
        if (actual === blob.digest) {
          advance(blob.size - counted);
          return received;
        }
        await rm(partialPath, { force: true });
        continue;
      }
      if (offset !== counted) {
        advance(offset - counted);
        counted = offset;
      }
      let response = await client.openBlob(blob.digest, { start: offset, signal });
      if (response.status === 416) {
        // The registry cannot serve from there: the .partial is not a prefix of this blob.
        await discard(response);
        await rm(partialPath, { force: true });
        advance(-counted);
        counted = 0;
        response = await client.openBlob(blob.digest, { signal });
        offset = 0;
      }
      let append = offset > 0;
      if (append && (response.status !== 206 || contentRangeStart(response) !== offset)) {
        // The registry ignored the range: start over with what it sends.
        append = false;
        if (response.status === 206) {
          await discard(response);
          response = await client.openBlob(blob.digest, { signal });
        }
      }
      if (!append && counted > 0) {
        advance(-counted);
        counted = 0;
      }
      const fresh = append ? hash : createHash('sha256');
      const start = append ? offset : 0;
      const bytes = await writeBody(
        response,
        partialPath,
        append,
        start,
        blob,
        fresh,
        (n) => {
          received += n;
          counted += n;
          advance(n);
        },
        signal,
      );
      if (start + bytes !== blob.size) {
        throw new RegistryUnavailableError(
          'oci-download-interrupted',
          client.redact(
            `The download of blob ${blob.digest} ended after ${start + bytes} of ${blob.size} bytes.`,
          ),
          'Run again; the download resumes.',
        );
      }
      const actual = `sha256:${fresh.digest('hex')}`;
      if (actual !== blob.digest) {
        await rm(partialPath, { force: true });
        throw new ApertusError(
          'oci-digest-mismatch',
          client.redact(
            `Blob ${blob.digest} (${blob.mediaType}) does not match its digest: its bytes hash to ${actual}.`,
          ),
          {
            kind: 'operation',
            hint: 'The registry, a proxy or the network corrupted the data; nothing was kept. Run again; if it repeats, the registry storage is damaged: tell its operators.',
            details: { expected: blob.digest, actual },
          },
        );
      }
      return received;
    } catch (error) {
      signal.throwIfAborted();
      // Registry and network failures are retried; a local write failure (ENOSPC) is not.
      const local = typeof (error as { syscall?: unknown }).syscall === 'string';
      if (local) throw error;
      const retryable = isRetryableRegistryError(error) || !isApertusError(error);
      if (!retryable || attempt >= job.attempts) {
        if (isApertusError(error)) throw error;
        throw new RegistryUnavailableError(
          'oci-download-interrupted',
          client.redact(`The download of blob ${blob.digest} failed: ${describeNetworkError(error)}.`),
          'Run again; the download resumes where it stopped.',
          undefined,
          error,
        );
      }
      await sleep(retryDelayMs(attempt, error), undefined, { signal });
    }
  }
}

/** Streams the body into the file (appending or truncating); returns the bytes written. */
async function writeBody(
  response: Response,
  path: string,
  append: boolean,
  start: number,
  blob: OciImageBlob,
  hash: Hash,
  onBytes: (bytes: number) => void,
  signal: AbortSignal,
): Promise<number> {
  const handle = await open(path, append ? 'a' : 'w');
  let written = 0;
  try {
    if (response.body === null) return 0;
    const reader = response.body.getReader();
    try {
      for (;;) {
        signal.throwIfAborted();
        const { done, value } = await reader.read();
        if (done) break;
        if (start + written + value.length > blob.size) {
          await reader.cancel().catch(() => {});
          throw new ApertusError(
            'oci-digest-mismatch',
            `Blob ${blob.digest} is longer than the ${blob.size} bytes its manifest says.`,
            {
              kind: 'operation',
              hint: 'The registry served other content than the manifest names; run again, and tell the registry operators if it repeats.',
            },
          );
        }
        await handle.write(value);
        hash.update(value);
        written += value.length;
        onBytes(value.length);
      }
    } finally {
      reader.releaseLock();
    }
  } catch (error) {
    if (isApertusError(error)) await rm(path, { force: true });
    throw error;
  } finally {
    await handle.close();
  }
  return written;
}

function contentRangeStart(response: Response): number | undefined {
  const match = /^bytes\s+(\d+)-/.exec(response.headers.get('content-range') ?? '');
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

async function fileSize(path: string): Promise<number | undefined> {
  try {
    const info = await stat(path);
    return info.isFile() ? info.size : undefined;
  } catch {
    return undefined;
  }
}

async function hashPrefix(hash: Hash, path: string, end: number, signal: AbortSignal): Promise<void> {
  const stream = createReadStream(path, { start: 0, end: end - 1, highWaterMark: 1 << 20, signal });
  for await (const chunk of stream) hash.update(chunk as Buffer);
}

async function hashFile(path: string, signal: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  const stream = createReadStream(path, { highWaterMark: 1 << 20, signal });
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}
