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
 * The download itself is the one hf: uses too: ../resumable-download.ts.
 */

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ApertusError, isApertusError } from '../../errors.js';
import { noProgress } from '../../progress.js';
import { createFetchProgress, type FetchProgress } from '../fetch-progress.js';
import { regularFileSize } from '../file-size.js';
import { describeNetworkError } from '../http.js';
import { mapPool } from '../map-pool.js';
import { downloadResumable, PARTIAL_SUFFIX } from '../resumable-download.js';
import type { FetchedFile, ResolvedSource, SourceContext } from '../types.js';
import { imageManifestSchema } from './image-schemas.js';
import { createRegistryClient, type RegistryClient, RegistryUnavailableError } from './registry-client.js';
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
  const progress = createFetchProgress(onProgress, total);
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
    progress,
    label,
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
    bytes: { done: total, total, received: progress.received },
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
  progress: FetchProgress;
  /** The pinned reference, for progress details. */
  label: string;
  attempts: number;
}

async function obtainBlob(blob: OciImageBlob, path: string, job: BlobJob): Promise<OciFetchedFile> {
  const { signal, progress } = job;
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
    if (
      (await regularFileSize(finalPath)) === blob.size &&
      (await hashFile(finalPath, signal)) === blob.digest
    ) {
      progress.advance(blob.size);
      progress.flush(job.label);
      return result('cache');
    }
    await rm(finalPath, { force: true });
    await mkdir(dirname(finalPath), { recursive: true });
    const downloadedBytes = await download(blob, finalPath, job);
    progress.flush(job.label);
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

/** The shared resumable download, speaking to the registry and phrasing its errors for oci:. */
async function download(blob: OciImageBlob, finalPath: string, job: BlobJob): Promise<number> {
  const { client } = job;
  const what = `blob ${blob.digest}`;
  const { received } = await downloadResumable(
    {
      path: finalPath,
      size: blob.size,
      createHash: () => createHash('sha256'),
      expectedHex: blob.digest.slice('sha256:'.length),
    },
    {
      what,
      open: (start, signal) => client.openBlob(blob.digest, { start, signal }),
      interrupted: (message, cause) =>
        new RegistryUnavailableError(
          'oci-download-interrupted',
          client.redact(message),
          'Run again; the download resumes where it stopped.',
          undefined,
          cause,
        ),
      mismatch: (why, actual) =>
        new ApertusError(
          'oci-digest-mismatch',
          client.redact(`Blob ${blob.digest} (${blob.mediaType}) does not match its digest: ${why}.`),
          {
            kind: 'operation',
            hint: 'The registry, a proxy or the network corrupted the data; nothing was kept. Run again; if it repeats, the registry storage is damaged: tell its operators.',
            details: { expected: blob.digest, ...(actual ? { actual: `sha256:${actual}` } : {}) },
          },
        ),
      describeError: describeNetworkError,
    },
    {
      signal: job.signal,
      attempts: job.attempts,
      onBytes: (delta, fresh) => job.progress.advance(delta, fresh, job.label),
    },
  );
  return received;
}

async function hashFile(path: string, signal: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  const stream = createReadStream(path, { highWaterMark: 1 << 20, signal });
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}
