/**
 * An hf: source looked at without downloading it: the files of one commit with their
 * sizes, each readable by byte range, so `check --recipe` can read config.json and the
 * few header bytes of safetensors and GGUF files. Bytes come from the local Hugging Face
 * cache where it holds the file, else from the Hub (or mirror) by HTTP Range.
 *
 * With HF_HUB_OFFLINE set nothing goes to the network, as with huggingface_hub
 * (runtime-facts §2.7): the revision is resolved by the cache's refs/ (or is a commit),
 * and the files are those its snapshot holds, which may be fewer than the repository's.
 */
import { join } from 'node:path';
import { ApertusError, isApertusError } from '../../errors.js';
import type { RangeReader } from '../../gpu/byte-range.js';
import { fileRange, listLocalFiles } from '../file/local-files.js';
import { regularFileSize } from '../file-size.js';
import { describeNetworkError } from '../http.js';
import type { SourceContext } from '../types.js';
import { createHubClient, type HubClient, HubUnavailableError, withHubRetries } from './hub-client.js';
import {
  hfCacheCandidates,
  hfCachedCommit,
  hfHubCacheDir,
  hfSnapshotDir,
  isHfHubOffline,
} from './local-hf-cache.js';
import { parseHfSource } from './parse-hf-source.js';
import { createPathFilter } from './path-glob.js';
import { expectedDigestOf, listHfFiles, type ResolveHfOptions } from './resolve-hf.js';

export interface HfSnapshotFile {
  /** Path in the repository, '/'-separated. */
  path: string;
  size: number;
  read: RangeReader;
}

export interface HfSnapshot {
  /** 'ORG/NAME'. */
  repo: string;
  /** As the source names it: a branch, a tag or a commit. */
  revision: string;
  commit: string;
  /**
   * 'hf-cache': HF_HUB_OFFLINE is set and the files are those the cache holds (possibly
   * not all of the repository's); 'hub': the Hub's listing of the commit.
   */
  listedFrom: 'hf-cache' | 'hub';
  files: HfSnapshotFile[];
  /** The error for a file the caller needs and this snapshot lacks (`why` says what needs it). */
  missing(path: string, why: string): ApertusError;
}

export interface HfSnapshotContext {
  env: SourceContext['env'];
  signal?: AbortSignal | undefined;
}

export async function openHfSnapshot(
  source: string,
  options: ResolveHfOptions,
  ctx: HfSnapshotContext,
): Promise<HfSnapshot> {
  return isHfHubOffline(ctx.env)
    ? openCachedSnapshot(source, options, ctx)
    : openHubSnapshot(source, options, ctx);
}

async function openCachedSnapshot(
  source: string,
  options: ResolveHfOptions,
  ctx: HfSnapshotContext,
): Promise<HfSnapshot> {
  const { repo, revision } = parseHfSource(source);
  const cacheDir = hfHubCacheDir(ctx.env);
  const fill = `Fill the cache on a machine with network access (\`hf download ${repo} --revision ${revision}\`, with HF_HUB_CACHE=${cacheDir}) and bring it here, or unset HF_HUB_OFFLINE to read from the Hub.`;
  const notCached = (what: string) =>
    new ApertusError('hf-not-cached', `HF_HUB_OFFLINE is set, and ${what}.`, {
      hint: fill,
      details: { repo, revision, cache: cacheDir },
    });
  const commit = await hfCachedCommit(ctx.env, repo, revision);
  if (commit === undefined) {
    throw notCached(`the Hugging Face cache ${cacheDir} does not know revision ${revision} of ${repo}`);
  }
  const dir = hfSnapshotDir(ctx.env, repo, commit);
  const listed = await listLocalFiles(dir, { followLinks: true }).catch(() => []);
  const matches = createPathFilter(options);
  const files = listed.filter((file) => matches(file.path));
  if (files.length === 0) {
    throw notCached(
      `the Hugging Face cache holds no file of ${repo}@${revision} (commit ${commit})${listed.length > 0 ? ' that include/exclude keep' : ''}`,
    );
  }
  return {
    repo,
    revision,
    commit,
    listedFrom: 'hf-cache',
    files: files.map((file) => ({ ...file, read: fileRange(join(dir, ...file.path.split('/'))) })),
    missing: (path, why) =>
      notCached(
        `the Hugging Face cache holds ${repo}@${revision} (commit ${commit}) without ${path}, which ${why}`,
      ),
  };
}

async function openHubSnapshot(
  source: string,
  options: ResolveHfOptions,
  ctx: HfSnapshotContext,
): Promise<HfSnapshot> {
  const { revision } = parseHfSource(source);
  const client = await createHubClient({
    env: ctx.env,
    ...(options.hubUrl ? { hubUrl: options.hubUrl } : {}),
  });
  const { repo, commit, files } = await listHfFiles(client, source, options, ctx.signal).catch(
    (error: unknown) => {
      throw withOfflineHint(error);
    },
  );
  return {
    repo,
    revision,
    commit,
    listedFrom: 'hub',
    files: files.map((file) => {
      // Chosen at the first read: most files of a repository are never read by a check.
      let chosen: Promise<RangeReader> | undefined;
      const choose = async (): Promise<RangeReader> => {
        // Blob names are content hashes, and the size rules out a truncated copy; hashing
        // gigabytes to read a header would defeat the point of reading only the header.
        for (const candidate of hfCacheCandidates(
          ctx.env,
          repo,
          commit,
          file.path,
          expectedDigestOf(file).hex,
        )) {
          if ((await regularFileSize(candidate)) === file.size) return fileRange(candidate);
        }
        return hubRange(client, { repo, commit, path: file.path }, ctx.signal);
      };
      return {
        path: file.path,
        size: file.size,
        read: async (offset, length) => {
          chosen ??= choose();
          return (await chosen)(offset, length);
        },
      };
    }),
    missing: (path, why) =>
      new ApertusError(
        'hf-file-missing',
        `${repo}@${revision} (commit ${commit}) has no ${path}, which ${why}.`,
        {
          hint: `Check the repository on ${client.endpoint}/${repo}, and the include/exclude patterns of the component.`,
          details: { repo, revision, commit },
        },
      ),
  };
}

/** Bytes of a file on the Hub by HTTP Range: the few a header needs, not the file. */
function hubRange(
  client: HubClient,
  target: { repo: string; commit: string; path: string },
  signal: AbortSignal | undefined,
): RangeReader {
  return async (offset, length) => {
    if (length <= 0) return Buffer.alloc(0);
    return withHubRetries(async () => {
      const { response } = await client.openFile(target, {
        start: offset,
        end: offset + length - 1,
        ...(signal ? { signal } : {}),
      });
      if (response.status === 416) {
        await response.body?.cancel().catch(() => {});
        return Buffer.alloc(0);
      }
      // A server that ignores Range answers 200 with the whole file (§2.4): skip to the offset.
      const skip = response.status === 206 ? 0 : offset;
      try {
        return await bodySlice(response, skip, length);
      } catch (error) {
        signal?.throwIfAborted();
        throw new HubUnavailableError(
          'hf-download-interrupted',
          client.redact(`Reading ${target.repo}/${target.path} broke off: ${describeNetworkError(error)}.`),
          'Run again; check the network or proxy if it keeps breaking off.',
        );
      }
    }, signal);
  };
}

/** `length` bytes of the body from `skip` on; the rest is never downloaded. */
async function bodySlice(response: Response, skip: number, length: number): Promise<Buffer> {
  const reader = response.body?.getReader();
  if (!reader) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let seen = 0;
  let kept = 0;
  try {
    while (kept < length) {
      const { done, value } = await reader.read();
      if (done) break;
      const from = Math.max(0, skip - seen);
      seen += value.length;
      if (from >= value.length) continue;
      const piece = Buffer.from(value.subarray(from, from + length - kept));
      chunks.push(piece);
      kept += piece.length;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return Buffer.concat(chunks);
}

/** An unreachable Hub: the cache alone may do, and the operator should hear how. */
function withOfflineHint(error: unknown): unknown {
  if (!isApertusError(error) || error.code !== 'hf-unreachable') return error;
  return new ApertusError(error.code, error.message, {
    kind: error.kind,
    hint: `${error.hint ?? ''} To check against the Hugging Face cache alone, set HF_HUB_OFFLINE=1.`.trim(),
    cause: error,
  });
}
