/**
 * Download of a resolved `hf:` source into apertus's cache, every file verified against
 * the hash the Hub published for it (runtime-facts §2.5):
 *
 *   <cacheDir>/hf/<ORG>/<NAME>/<commit>/<path>            verified files only
 *   <cacheDir>/hf/<ORG>/<NAME>/<commit>/<path>.partial    an interrupted download
 *
 * A file is taken, in this order, from our cache, from the local Hugging Face cache
 * (§2.6: the snapshot entry, else the blob named by its etag), or downloaded. Downloads run
 * a few at a time, resume a `.partial` with `Range: bytes=N-` and start over when the
 * server ignores the range (§2.4). An abort leaves the `.partial` files for the next run.
 * The download itself is the one oci: uses too: ../resumable-download.ts.
 */

import { mkdir, realpath, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ApertusError, isApertusError } from '../../errors.js';
import { noProgress } from '../../progress.js';
import { createFetchProgress, type FetchProgress } from '../fetch-progress.js';
import { regularFileSize } from '../file-size.js';
import { describeNetworkError } from '../http.js';
import { mapPool } from '../map-pool.js';
import { downloadResumable } from '../resumable-download.js';
import type { FetchedFile, ResolvedFile, ResolvedSource, SourceContext } from '../types.js';
import { createContentHash, type ExpectedDigest, formatDigest, hashFile } from './file-digest.js';
import { createHubClient, type HubClient, HubUnavailableError } from './hub-client.js';
import { hfCacheCandidates } from './local-hf-cache.js';
import { isCommitSha, isSafeRepoPath, parseHfSource } from './parse-hf-source.js';

/** Where a fetched file came from. */
export type HfFileOrigin = 'downloaded' | 'cache' | 'hf-cache';

export interface HfFetchedFile extends FetchedFile {
  origin: HfFileOrigin;
  /** Bytes this run received over the network for the file (0 when reused). */
  downloadedBytes: number;
}

export interface FetchHfOptions {
  /** Files downloaded at the same time. */
  concurrency?: number;
}

export const DEFAULT_CONCURRENCY = 4;
/** Attempts per file when the connection breaks or the Hub fails; each resumes where the last stopped. */
const DOWNLOAD_ATTEMPTS = 5;

interface PlannedFile {
  file: ResolvedFile;
  expected: ExpectedDigest;
  finalPath: string;
}

export async function fetchHf(
  resolved: ResolvedSource,
  ctx: SourceContext,
  options: FetchHfOptions = {},
): Promise<HfFetchedFile[]> {
  const { repo, commit } = sourceIdentity(resolved);
  const endpoint = (resolved as { endpoint?: unknown }).endpoint;
  const onProgress = ctx.onProgress ?? noProgress;
  const root = join(ctx.cacheDir, 'hf', ...repo.split('/'), commit);
  const planned = resolved.files.map((file): PlannedFile => {
    if (!isSafeRepoPath(file.path)) {
      throw new ApertusError(
        'hf-source-invalid',
        `The file path ${JSON.stringify(file.path)} is not safe to write.`,
        {
          hint: 'Resolve the source again with apertus instead of editing its file list.',
        },
      );
    }
    const finalPath = join(root, ...file.path.split('/'));
    return { file, expected: expectedDigest(file), finalPath };
  });
  const client = await createHubClient({
    env: ctx.env,
    ...(typeof endpoint === 'string' ? { hubUrl: endpoint } : {}),
  });

  const total = planned.reduce((sum, p) => sum + p.file.size, 0);
  const progress = createFetchProgress(onProgress, total);
  onProgress({
    step: 'fetch',
    status: 'start',
    detail: `${repo}@${commit.slice(0, 12)}: ${planned.length} files, ${total} bytes`,
    bytes: { done: 0, total },
  });

  // One failure stops the other downloads (their .partial files stay for the next run).
  const controller = new AbortController();
  const onOuterAbort = () => controller.abort(ctx.signal?.reason);
  if (ctx.signal?.aborted) onOuterAbort();
  ctx.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const job: FetchJob = { client, repo, commit, ctx, signal: controller.signal, progress };
  let results: HfFetchedFile[];
  try {
    // Largest first, so one big shard does not start last and run alone.
    const order = planned
      .map((_, index) => index)
      .sort((a, b) => planned[b]!.file.size - planned[a]!.file.size);
    const inOrder = await mapPool(order, options.concurrency ?? DEFAULT_CONCURRENCY, controller, (index) =>
      obtainFile(planned[index]!, job),
    );
    results = new Array(planned.length);
    inOrder.forEach((fetched, position) => {
      results[order[position]!] = fetched;
    });
  } catch (error) {
    if (!ctx.signal?.aborted) {
      onProgress({ step: 'fetch', status: 'fail', detail: client.redact((error as Error).message) });
    }
    throw error;
  } finally {
    ctx.signal?.removeEventListener('abort', onOuterAbort);
  }

  const count = (origin: HfFileOrigin) => results.filter((r) => r.origin === origin).length;
  const downloadedBytes = results.reduce((sum, r) => sum + r.downloadedBytes, 0);
  onProgress({
    step: 'fetch',
    status: 'ok',
    detail:
      `${repo}@${commit.slice(0, 12)}: ${count('downloaded')} downloaded (${downloadedBytes} bytes), ` +
      `${count('cache')} reused from the apertus cache, ${count('hf-cache')} from the Hugging Face cache`,
    bytes: { done: total, total, received: progress.received },
  });
  return results;
}

interface FetchJob {
  client: HubClient;
  repo: string;
  commit: string;
  ctx: SourceContext;
  signal: AbortSignal;
  progress: FetchProgress;
}

/** Repo and commit from an HfResolvedSource, or from the pinned `hf://ORG/NAME@<commit>`. */
function sourceIdentity(resolved: ResolvedSource): { repo: string; commit: string } {
  const { repo, revision } = parseHfSource(resolved.pinned);
  const commit = resolved.revision;
  if (!isCommitSha(commit) || revision !== commit) {
    throw new ApertusError(
      'hf-source-unpinned',
      `${resolved.source} is not pinned to a commit (pinned ${resolved.pinned}, revision ${resolved.revision}).`,
      { hint: 'Resolve the source first (resolveHf) and fetch what it returns.' },
    );
  }
  return { repo, commit };
}

function expectedDigest(file: ResolvedFile): ExpectedDigest {
  const sha256 = /^sha256:([0-9a-f]{64})$/.exec(file.digest ?? '');
  if (sha256?.[1]) return { algorithm: 'sha256', hex: sha256[1] };
  const gitOid = (file as { gitOid?: unknown }).gitOid;
  if (typeof gitOid === 'string' && /^[0-9a-f]{40}$/.test(gitOid))
    return { algorithm: 'git-sha1', hex: gitOid };
  throw new ApertusError(
    'hf-unverifiable',
    `${file.path} has no published hash to verify its download against.`,
    {
      hint: 'Resolve the source again with apertus (it records the sha256 or git blob id of every file).',
    },
  );
}

async function hasContent(path: string, p: PlannedFile, signal: AbortSignal): Promise<boolean> {
  if ((await regularFileSize(path)) !== p.file.size) return false;
  try {
    return (await hashFile(path, p.expected.algorithm, p.file.size, signal)) === p.expected.hex;
  } catch {
    signal.throwIfAborted();
    return false;
  }
}

async function obtainFile(p: PlannedFile, job: FetchJob): Promise<HfFetchedFile> {
  const { signal, progress } = job;
  const path = p.file.path;
  const result = (origin: HfFileOrigin, localPath: string, downloadedBytes = 0): HfFetchedFile => ({
    ...p.file,
    localPath,
    origin,
    downloadedBytes,
  });
  try {
    // Files only get their final name once verified; checking again still catches a cache
    // that was edited or damaged on disk since.
    if (await hasContent(p.finalPath, p, signal)) {
      progress.advance(p.file.size);
      progress.flush(path);
      return result('cache', p.finalPath);
    }
    await rm(p.finalPath, { force: true });
    for (const candidate of hfCacheCandidates(job.ctx.env, job.repo, job.commit, path, p.expected.hex)) {
      if (await hasContent(candidate, p, signal)) {
        progress.advance(p.file.size);
        progress.flush(path);
        return result('hf-cache', await realpath(candidate));
      }
    }
    await mkdir(dirname(p.finalPath), { recursive: true });
    const downloadedBytes = await download(p, job);
    progress.flush(path);
    return result('downloaded', p.finalPath, downloadedBytes);
  } catch (error) {
    signal.throwIfAborted();
    if (isApertusError(error)) throw error;
    throw new ApertusError(
      'fetch-write-failed',
      job.client.redact(`Cannot store ${path} in ${dirname(p.finalPath)}: ${describeNetworkError(error)}.`),
      {
        kind: 'operation',
        hint: 'Check free space and permissions there, or point the cache at another disk; the download resumes.',
        cause: error,
      },
    );
  }
}

/** The shared resumable download, speaking to the Hub and phrasing its errors for hf:. */
async function download(p: PlannedFile, job: FetchJob): Promise<number> {
  const { file, expected } = p;
  const { client } = job;
  const what = `${job.repo}/${file.path}`;
  const { received } = await downloadResumable(
    {
      path: p.finalPath,
      size: file.size,
      createHash: () => createContentHash(expected.algorithm, file.size),
      expectedHex: expected.hex,
    },
    {
      what,
      open: async (start, signal) =>
        (await client.openFile({ repo: job.repo, commit: job.commit, path: file.path }, { start, signal }))
          .response,
      interrupted: (message, cause) =>
        new HubUnavailableError(
          'hf-download-interrupted',
          client.redact(message),
          'Run again: the download resumes where it stopped.',
          undefined,
          cause,
        ),
      mismatch: (why, actual) => mismatch(job, file, expected, why, actual),
      describeError: describeNetworkError,
    },
    {
      signal: job.signal,
      attempts: DOWNLOAD_ATTEMPTS,
      onBytes: (delta, fresh) => job.progress.advance(delta, fresh, file.path),
    },
  );
  return received;
}

function mismatch(
  job: FetchJob,
  file: ResolvedFile,
  expected: ExpectedDigest,
  why: string,
  actual?: string,
): ApertusError {
  return new ApertusError(
    'hf-digest-mismatch',
    job.client.redact(
      `${file.path} from ${job.repo}@${job.commit.slice(0, 12)} does not match its published ${formatDigest(expected)}: ${why}. The download was deleted.`,
    ),
    {
      kind: 'operation',
      hint: 'Run again to download it afresh; if it fails again, a proxy or mirror (HF_ENDPOINT) is altering the file.',
      details: { path: file.path, expected: formatDigest(expected), ...(actual ? { actual } : {}) },
    },
  );
}
