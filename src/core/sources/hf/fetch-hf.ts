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
 */

import type { Hash } from 'node:crypto';
import { mkdir, open, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApertusError, isApertusError } from '../../errors.js';
import { noProgress } from '../../progress.js';
import { mapPool } from '../map-pool.js';
import { retryDelayMs } from '../retry.js';
import type { FetchedFile, ResolvedFile, ResolvedSource, SourceContext } from '../types.js';
import {
  createContentHash,
  type ExpectedDigest,
  formatDigest,
  hashFile,
  hashFileRange,
} from './file-digest.js';
import {
  createHubClient,
  describeNetworkError,
  type HubClient,
  HubUnavailableError,
  isRetryableHubError,
} from './hub-client.js';
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
const PROGRESS_EVERY = 4 * 1024 * 1024;
export const PARTIAL_SUFFIX = '.partial';

interface PlannedFile {
  file: ResolvedFile;
  expected: ExpectedDigest;
  finalPath: string;
  partialPath: string;
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
    return { file, expected: expectedDigest(file), finalPath, partialPath: `${finalPath}${PARTIAL_SUFFIX}` };
  });
  const client = await createHubClient({
    env: ctx.env,
    ...(typeof endpoint === 'string' ? { hubUrl: endpoint } : {}),
  });

  const total = planned.reduce((sum, p) => sum + p.file.size, 0);
  let done = 0;
  let reported = 0;
  const advance = (bytes: number, path: string, force = false) => {
    done += bytes;
    if (force || Math.abs(done - reported) >= PROGRESS_EVERY) {
      reported = done;
      onProgress({ step: 'fetch', status: 'info', bytes: { done, total }, detail: path });
    }
  };
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
  const job: FetchJob = { client, repo, commit, ctx, signal: controller.signal, advance };
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
    bytes: { done: total, total },
  });
  return results;
}

interface FetchJob {
  client: HubClient;
  repo: string;
  commit: string;
  ctx: SourceContext;
  signal: AbortSignal;
  advance: (bytes: number, path: string, force?: boolean) => void;
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

async function fileSize(path: string): Promise<number | undefined> {
  try {
    const info = await stat(path);
    return info.isFile() ? info.size : undefined;
  } catch {
    return undefined;
  }
}

async function hasContent(path: string, p: PlannedFile, signal: AbortSignal): Promise<boolean> {
  if ((await fileSize(path)) !== p.file.size) return false;
  try {
    return (await hashFile(path, p.expected.algorithm, p.file.size, signal)) === p.expected.hex;
  } catch {
    signal.throwIfAborted();
    return false;
  }
}

async function obtainFile(p: PlannedFile, job: FetchJob): Promise<HfFetchedFile> {
  const { signal, advance } = job;
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
      advance(p.file.size, path, true);
      return result('cache', p.finalPath);
    }
    await rm(p.finalPath, { force: true });
    for (const candidate of hfCacheCandidates(job.ctx.env, job.repo, job.commit, path, p.expected.hex)) {
      if (await hasContent(candidate, p, signal)) {
        advance(p.file.size, path, true);
        return result('hf-cache', await realpath(candidate));
      }
    }
    await mkdir(dirname(p.finalPath), { recursive: true });
    const downloadedBytes = await download(p, job);
    await rename(p.partialPath, p.finalPath);
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

/** Downloads into the .partial file, resuming and retrying; returns the bytes received. */
async function download(p: PlannedFile, job: FetchJob): Promise<number> {
  const { signal, advance } = job;
  const { file, expected, partialPath } = p;
  const state: HashState = {};
  let counted = 0;
  let received = 0;
  const count = (bytes: number, force = false) => {
    counted += bytes;
    advance(bytes, file.path, force);
  };
  if (file.size === 0) await writeFile(partialPath, '');

  for (let attempt = 1; ; attempt++) {
    let start = (await fileSize(partialPath)) ?? 0;
    if (start > file.size) {
      await rm(partialPath, { force: true });
      start = 0;
    }
    // The hash continues across attempts while it has seen exactly the bytes on disk;
    // otherwise (first attempt, a failed write) it is rebuilt from the partial file.
    if (state.hashed?.bytes !== start) {
      state.hashed = { hash: createContentHash(expected.algorithm, file.size), bytes: start };
      await hashFileRange(state.hashed.hash, partialPath, { end: start }, { signal });
    }
    count(start - counted);
    if (start === file.size) break;
    try {
      const outcome = await downloadOnce(p, job, start, state, count);
      received += outcome.received;
      if (outcome.complete) break;
      throw new HubUnavailableError(
        'hf-download-interrupted',
        `The download of ${job.repo}/${file.path} ended after ${start + outcome.received} of ${file.size} bytes.`,
        'Run again: the download resumes where it stopped.',
      );
    } catch (error) {
      signal.throwIfAborted();
      if (!isRetryableHubError(error) || attempt >= DOWNLOAD_ATTEMPTS) throw error;
      await sleep(retryDelayMs(attempt, error), undefined, { signal });
    }
  }

  const actual = state.hashed?.hash.digest('hex');
  if (actual !== expected.hex) {
    await rm(partialPath, { force: true });
    count(-counted, true);
    throw mismatch(job, file, expected, `its content hashes to ${actual ?? '?'}`, actual);
  }
  count(0, true);
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

/** The running hash of the .partial file and how many of its bytes it has seen. */
interface HashState {
  hashed?: { hash: Hash; bytes: number };
}

interface AttemptOutcome {
  received: number;
  complete: boolean;
}

async function downloadOnce(
  p: PlannedFile,
  job: FetchJob,
  start: number,
  state: HashState,
  count: (bytes: number, force?: boolean) => void,
): Promise<AttemptOutcome> {
  const { file, partialPath, expected } = p;
  const { signal } = job;
  const { response } = await job.client.openFile(
    { repo: job.repo, commit: job.commit, path: file.path },
    { start, signal },
  );
  let offset: number;
  const contentRange = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(response.headers.get('content-range') ?? '');
  // §2.4: the total size is in Content-Range for a 206, in Content-Length for a 200. A size
  // other than the listing's cannot give the published hash: refuse before downloading.
  const announced =
    response.status === 206
      ? contentRange?.[2]
      : response.status === 200
        ? response.headers.get('content-length')
        : null;
  if (announced != null && announced !== '*' && Number(announced) !== file.size) {
    await response.body?.cancel().catch(() => {});
    await rm(partialPath, { force: true });
    throw mismatch(job, file, expected, `the server sends ${announced} bytes, the listing says ${file.size}`);
  }
  if (response.status === 206 && start > 0 && Number(contentRange?.[1]) === start) {
    offset = start;
  } else if (response.status === 200) {
    // §2.4: "the server ignored our Range header": truncate and restart.
    offset = 0;
  } else {
    // 416, or a 206 for another range than asked: the partial file is not trustworthy.
    await response.body?.cancel().catch(() => {});
    await rm(partialPath, { force: true });
    throw new HubUnavailableError(
      'hf-download-interrupted',
      `The server answered HTTP ${response.status} to a resumed download of ${job.repo}/${file.path}.`,
      'Run again: the download starts over.',
    );
  }
  if (offset === 0) {
    state.hashed = { hash: createContentHash(expected.algorithm, file.size), bytes: 0 };
    count(-start);
  }
  const current = state.hashed;
  if (!current) throw new Error('the hash state is missing');

  const handle = await open(partialPath, offset === 0 ? 'w' : 'a');
  let received = 0;
  try {
    if (!response.body) throw new Error('the response has no body');
    for await (const chunk of response.body) {
      const bytes = chunk as Uint8Array;
      if (offset + received + bytes.length > file.size) {
        await handle.close().catch(() => {});
        await rm(partialPath, { force: true });
        throw mismatch(job, file, expected, `the server sent more than its ${file.size} bytes`);
      }
      // Write before hashing: after a failed write the hash no longer matches the file
      // size, and the next attempt rebuilds it from disk.
      await handle.write(bytes);
      current.hash.update(bytes);
      current.bytes += bytes.length;
      received += bytes.length;
      count(bytes.length);
    }
  } catch (error) {
    signal.throwIfAborted();
    if (isApertusError(error)) throw error;
    throw new HubUnavailableError(
      'hf-download-interrupted',
      job.client.redact(
        `The download of ${job.repo}/${file.path} broke off after ${offset + received} of ${file.size} bytes: ${describeNetworkError(error)}.`,
      ),
      'Run again: the download resumes where it stopped.',
    );
  } finally {
    await handle.close().catch(() => {});
  }
  return { received, complete: offset + received === file.size };
}
