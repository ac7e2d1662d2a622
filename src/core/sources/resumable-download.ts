/**
 * One verified, resumable download, shared by the hf: and oci: sources:
 *
 *   <path>.partial   the bytes so far; an abort or a broken connection leaves it for the next try
 *   <path>           only once the whole content hashes to the expected digest
 *
 * A `.partial` resumes with `Range: bytes=N-` (runtime-facts §2.4, §5.1 step 6). A server
 * that ignores the range (200) is followed from byte 0; one that cannot serve it (416, or a
 * 206 for another range) is asked again for the whole file. The content is hashed while it is
 * written, and the hash carries over between tries, so a resume re-reads the partial file only
 * when that is the only way to know its hash. A size the server announces that is not the
 * expected one, a body longer than it, or content that hashes to another digest is refused
 * and deleted. Network and server failures are retried with backoff; local write failures
 * (they carry a `syscall`) are not.
 */

import type { Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ApertusError, isApertusError } from '../errors.js';
import { regularFileSize } from './file-size.js';
import { retryDelayMs, SourceUnavailableError } from './retry.js';

export const PARTIAL_SUFFIX = '.partial';

export interface DownloadTarget {
  /** Where the verified file ends up; the download runs in `${path}.partial`. */
  path: string;
  size: number;
  /** A fresh hash of the content (sha256, or git's blob sha1, whose header needs the size). */
  createHash: () => Hash;
  /** Lower-case hex the hash must give. */
  expectedHex: string;
}

/** What differs between sources: how to ask for bytes, and how their errors read. */
export interface DownloadSource {
  /**
   * GET the content from byte `start` (a Range request when start > 0). Resolves with 200,
   * 206 or 416; other statuses throw (SourceUnavailableError when worth retrying).
   */
  open(start: number, signal: AbortSignal): Promise<Response>;
  /** A retryable failure; `message` says what broke off and where. */
  interrupted(message: string, cause?: unknown): SourceUnavailableError;
  /** The server sends other content than expected (not retried); `why` completes the sentence. */
  mismatch(why: string, actual?: string): ApertusError;
  /** Names the download in messages, e.g. `org/name/model.safetensors` or `blob sha256:...`. */
  what: string;
  describeError(error: unknown): string;
}

export interface DownloadOptions {
  signal: AbortSignal;
  /** Tries in all; each resumes where the last one stopped. */
  attempts: number;
  /**
   * `done` (bytes of this file on disk and counted) changes by `delta`, negative when the
   * download starts over; `received` of them came over the network just now.
   */
  onBytes?: (delta: number, received: number) => void;
}

export interface DownloadOutcome {
  /** Bytes received over the network in this call. */
  received: number;
}

interface RunningHash {
  hash: Hash;
  /** How many bytes of the partial file, from its start, it has seen. */
  bytes: number;
}

interface DownloadState {
  running?: RunningHash | undefined;
  /** The partial file holds bytes an earlier run wrote, which this one has not verified. */
  inherited: boolean;
}

/** Downloads `target` into `<path>.partial`, verifies it and renames it to `path`. */
export async function downloadResumable(
  target: DownloadTarget,
  source: DownloadSource,
  options: DownloadOptions,
): Promise<DownloadOutcome> {
  const { signal } = options;
  const partialPath = `${target.path}${PARTIAL_SUFFIX}`;
  let counted = 0;
  let received = 0;
  const report = (delta: number, fresh: number) => {
    counted += delta;
    received += fresh;
    if (delta !== 0 || fresh !== 0) options.onBytes?.(delta, fresh);
  };
  const recount = (bytes: number) => report(bytes - counted, 0);
  const state: DownloadState = { inherited: false };
  let restartedAfterMismatch = false;
  let attempt = 1;

  for (;;) {
    try {
      let start = (await regularFileSize(partialPath)) ?? 0;
      if (start > target.size) {
        await rm(partialPath, { force: true });
        start = 0;
      }
      if (state.running?.bytes !== start) {
        // First try, or a write failed: the hash is rebuilt from the bytes on disk.
        state.running = { hash: target.createHash(), bytes: start };
        await hashPrefix(state.running.hash, partialPath, start, signal);
        if (attempt === 1 && start > 0 && !restartedAfterMismatch) state.inherited = true;
      }
      recount(start);
      if (target.size === 0) await (await open(partialPath, 'w')).close();
      if (start < target.size) {
        const end = await transfer(target, source, partialPath, start, state, signal, report, recount);
        if (end !== target.size) {
          throw source.interrupted(
            `The download of ${source.what} ended after ${end} of ${target.size} bytes.`,
          );
        }
      }
      const actual = state.running.hash.digest('hex');
      state.running = undefined;
      if (actual !== target.expectedHex) {
        await rm(partialPath, { force: true });
        recount(0);
        if (state.inherited && !restartedAfterMismatch) {
          // The partial file came from an earlier run and may be what is wrong: one fresh try.
          restartedAfterMismatch = true;
          state.inherited = false;
          continue;
        }
        throw source.mismatch(`its content hashes to ${actual}`, actual);
      }
      await rename(partialPath, target.path);
      return { received };
    } catch (error) {
      signal.throwIfAborted();
      if (!isRetryable(error) || attempt >= options.attempts) throw finalError(error, source);
      await sleep(retryDelayMs(attempt, error), undefined, { signal });
      attempt++;
    }
  }
}

/** Streams one response into the partial file; returns where the file ends afterwards. */
async function transfer(
  target: DownloadTarget,
  source: DownloadSource,
  partialPath: string,
  start: number,
  state: DownloadState,
  signal: AbortSignal,
  report: (delta: number, fresh: number) => void,
  recount: (bytes: number) => void,
): Promise<number> {
  const { response, offset } = await openAt(source, start, signal);
  const announced =
    response.status === 206
      ? /\/(\d+)$/.exec(response.headers.get('content-range') ?? '')?.[1]
      : response.headers.get('content-length');
  if (announced != null && Number(announced) !== target.size) {
    // A size other than the expected one cannot give the expected hash: refuse before downloading.
    await discard(response);
    await rm(partialPath, { force: true });
    recount(0);
    throw source.mismatch(`the server announces ${announced} bytes instead of ${target.size}`);
  }
  if (offset === 0) {
    state.running = { hash: target.createHash(), bytes: 0 };
    state.inherited = false;
    recount(0);
  }
  const running = state.running;
  if (running === undefined) throw new Error('the hash of the partial file is missing');
  if (!response.body) {
    throw source.interrupted(`The download of ${source.what} answered HTTP ${response.status} with no body.`);
  }

  const reader = response.body.getReader();
  const handle = await open(partialPath, offset === 0 ? 'w' : 'a').catch(async (error: unknown) => {
    await reader.cancel().catch(() => {});
    throw error;
  });
  let end = offset;
  try {
    for (;;) {
      signal.throwIfAborted();
      const chunk = await readChunk(reader, source, end, target.size, signal);
      if (chunk === undefined) break;
      if (end + chunk.length > target.size) {
        await closeQuietly(handle);
        await rm(partialPath, { force: true });
        recount(0);
        state.running = undefined;
        throw source.mismatch(`the server sent more than ${target.size} bytes`);
      }
      // Write before hashing: after a failed write the hash no longer matches the file size,
      // and the next try rebuilds it from disk.
      await writeAll(handle, chunk);
      running.hash.update(chunk);
      running.bytes += chunk.length;
      end += chunk.length;
      report(chunk.length, chunk.length);
    }
  } finally {
    await reader.cancel().catch(() => {});
    await closeQuietly(handle);
  }
  return end;
}

/** Asks from `start`; where the server cannot serve that range, asks for the whole content. */
async function openAt(
  source: DownloadSource,
  start: number,
  signal: AbortSignal,
): Promise<{ response: Response; offset: number }> {
  let response = await source.open(start, signal);
  let asked = start;
  if (start > 0 && response.status !== 200 && !servesFrom(response, start)) {
    // 416, or a 206 for another range: the partial file is not a prefix the server can extend.
    await discard(response);
    response = await source.open(0, signal);
    asked = 0;
  }
  if (response.status === 200) return { response, offset: 0 };
  if (servesFrom(response, asked)) return { response, offset: asked };
  await discard(response);
  throw source.interrupted(
    `The server answered HTTP ${response.status} to the download of ${source.what} from byte ${asked}.`,
  );
}

function servesFrom(response: Response, start: number): boolean {
  if (response.status !== 206) return false;
  const match = /^bytes\s+(\d+)-/.exec(response.headers.get('content-range') ?? '');
  return match?.[1] !== undefined && Number(match[1]) === start;
}

async function readChunk(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  source: DownloadSource,
  at: number,
  size: number,
  signal: AbortSignal,
): Promise<Uint8Array | undefined> {
  try {
    const { done, value } = await reader.read();
    return done ? undefined : value;
  } catch (error) {
    signal.throwIfAborted();
    throw source.interrupted(
      `The download of ${source.what} broke off after ${at} of ${size} bytes: ${source.describeError(error)}.`,
      error,
    );
  }
}

async function writeAll(handle: FileHandle, chunk: Uint8Array): Promise<void> {
  let written = 0;
  while (written < chunk.length) {
    const { bytesWritten } = await handle.write(chunk, written, chunk.length - written);
    written += bytesWritten;
  }
}

/** Worth another try: the service or the network failed, not the request nor the local disk. */
function isRetryable(error: unknown): boolean {
  if (error instanceof SourceUnavailableError) return true;
  return !isApertusError(error) && !isLocalFailure(error);
}

function isLocalFailure(error: unknown): boolean {
  return typeof (error as { syscall?: unknown } | null)?.syscall === 'string';
}

/** What the caller sees once the tries are used up: network failures read as interruptions. */
function finalError(error: unknown, source: DownloadSource): unknown {
  if (isApertusError(error) || isLocalFailure(error)) return error;
  return source.interrupted(`The download of ${source.what} failed: ${source.describeError(error)}.`, error);
}

async function hashPrefix(hash: Hash, path: string, end: number, signal: AbortSignal): Promise<void> {
  if (end <= 0) return;
  const stream = createReadStream(path, { start: 0, end: end - 1, highWaterMark: 1 << 20, signal });
  for await (const chunk of stream) hash.update(chunk as Buffer);
}

async function discard(response: Response): Promise<void> {
  await response.body?.cancel().catch(() => {});
}

async function closeQuietly(handle: FileHandle): Promise<void> {
  await handle.close().catch(() => {});
}
