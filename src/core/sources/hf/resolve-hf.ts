/**
 * Resolution of an `hf:` source to exact content, reading metadata only (no file lands on
 * disk, so `bundle --dry-run` can show it): the revision becomes a commit sha, the tree at
 * that commit gives every file with its size and hash, and the include/exclude globs pick
 * the files. The same steps `snapshot_download` takes: `repo_info` for the sha, then
 * `list_repo_tree(recursive=True, revision=sha)` (runtime-facts §2.1).
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { ApertusError } from '../../errors.js';
import { describeNetworkError } from '../http.js';
import type { ResolvedFile, ResolvedSource, SourceContext } from '../types.js';
import { createContentHash, type ExpectedDigest, hashFile } from './file-digest.js';
import {
  createHubClient,
  type HubClient,
  type HubModelInfo,
  type HubTreeFile,
  HubUnavailableError,
  withHubRetries,
} from './hub-client.js';
import { hfCacheCandidates } from './local-hf-cache.js';
import { isSafeRepoPath, parseHfSource } from './parse-hf-source.js';
import { createPathFilter } from './path-glob.js';

export interface ResolveHfOptions {
  include?: string[];
  exclude?: string[];
  /** The Hub's base URL (`--hub-url`); overrides HF_ENDPOINT. */
  hubUrl?: string;
}

export interface HfResolvedFile extends ResolvedFile {
  /**
   * The git blob id from the listing. For plain git files it is the only published hash,
   * and fetching verifies against it; for LFS files it names the pointer, and `digest`
   * (the content's sha256) is what counts.
   */
  gitOid: string;
  lfs: boolean;
}

export interface HfResolvedSource extends ResolvedSource {
  kind: 'hf';
  /** 'ORG/NAME'. */
  repo: string;
  /** The Hub (or mirror) it was resolved against, so fetching goes to the same place. */
  endpoint: string;
  files: HfResolvedFile[];
}

/** Model cards are a few KB to a few tens of KB; a larger README is not worth a download for the licence. */
const MAX_README_BYTES = 256 * 1024;

export async function resolveHf(
  source: string,
  options: ResolveHfOptions,
  ctx: SourceContext,
): Promise<HfResolvedSource> {
  const client = await createHubClient({
    env: ctx.env,
    ...(options.hubUrl ? { hubUrl: options.hubUrl } : {}),
  });
  ctx.onProgress?.({ step: 'resolve', status: 'start', detail: `${source} on ${client.endpoint}` });
  try {
    return await resolveWith(client, source, options, ctx);
  } catch (error) {
    if (!ctx.signal?.aborted) {
      ctx.onProgress?.({ step: 'resolve', status: 'fail', detail: client.redact((error as Error).message) });
    }
    throw error;
  }
}

/** An hf: source's revision pinned to its commit, with the files there that the filters keep. */
export interface HfListing {
  /** 'ORG/NAME'. */
  repo: string;
  commit: string;
  info: HubModelInfo;
  /** Every file at the commit. */
  listing: HubTreeFile[];
  /** The files include/exclude keep, sorted by path; never empty. */
  files: HubTreeFile[];
}

/** Metadata only: the revision's commit and the tree listing at it, filtered. */
export async function listHfFiles(
  client: HubClient,
  source: string,
  filter: Pick<ResolveHfOptions, 'include' | 'exclude'>,
  signal: AbortSignal | undefined,
): Promise<HfListing> {
  const { repo, revision } = parseHfSource(source);
  const matches = createPathFilter(filter);
  const info = await client.modelInfo(repo, revision, signal);
  const commit = info.sha;
  const listing = await client.listFiles(repo, commit, signal);
  for (const file of listing) {
    if (!isSafeRepoPath(file.path)) {
      throw new ApertusError(
        'hf-bad-response',
        client.redact(`The listing of ${repo}@${commit} names an unsafe path: ${JSON.stringify(file.path)}.`),
        {
          kind: 'operation',
          hint: 'Check that HF_ENDPOINT (or --hub-url) points at a trustworthy Hub mirror.',
        },
      );
    }
  }
  const files = listing
    .filter((file) => matches(file.path))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  if (files.length === 0) {
    const sample = listing
      .slice(0, 8)
      .map((file) => file.path)
      .join(', ');
    throw new ApertusError(
      'hf-no-files',
      `No file of ${repo}@${commit} matches the include/exclude patterns.`,
      {
        hint: listing.length
          ? `Adjust include/exclude; the repository holds ${listing.length} files, e.g. ${sample}.`
          : `The repository has no files at this revision; check ${client.endpoint}/${repo}.`,
      },
    );
  }
  return { repo, commit, info, listing, files };
}

async function resolveWith(
  client: HubClient,
  source: string,
  options: ResolveHfOptions,
  ctx: SourceContext,
): Promise<HfResolvedSource> {
  const { repo, commit, info, listing, files } = await listHfFiles(client, source, options, ctx.signal);
  const license =
    licenseFromCard(info.cardData) ?? (await licenseFromReadme(client, repo, commit, listing, ctx));
  ctx.onProgress?.({
    step: 'resolve',
    status: 'ok',
    detail: `${source} -> ${commit}: ${files.length} files, ${files.reduce((sum, f) => sum + f.size, 0)} bytes`,
  });
  return {
    kind: 'hf',
    source,
    pinned: `hf://${repo}@${commit}`,
    revision: commit,
    ...(license ? { license } : {}),
    repo,
    endpoint: client.endpoint,
    files: files.map(toResolvedFile),
  };
}

function toResolvedFile(file: HubTreeFile): HfResolvedFile {
  return {
    path: file.path,
    size: file.size,
    // §2.5: LFS content verifies by sha256 == lfs.oid; plain files only by the git blob id.
    ...(file.lfs ? { digest: `sha256:${file.lfs.oid}` } : {}),
    gitOid: file.oid,
    lfs: file.lfs !== undefined,
  };
}

/** The hash a listed file's content must have (§2.5), which is also its HF cache blob name (§2.6). */
export function expectedDigestOf(file: HubTreeFile): ExpectedDigest {
  return file.lfs ? { algorithm: 'sha256', hex: file.lfs.oid } : { algorithm: 'git-sha1', hex: file.oid };
}

/** `license: other` comes with `license_name` on the Hub; that name says more. */
function licenseFromCard(card: Record<string, unknown> | undefined): string | undefined {
  const license = card?.license;
  if (typeof license !== 'string' || license.trim() === '') return undefined;
  const name = card?.license_name;
  return license === 'other' && typeof name === 'string' && name.trim() !== '' ? name.trim() : license.trim();
}

export function licenseFromFrontMatter(readme: string): string | undefined {
  const match = /^\uFEFF?---[ \t]*\r?\n([\s\S]*?)\r?\n---[ \t]*(?:\r?\n|$)/.exec(readme);
  if (!match) return undefined;
  try {
    const header = parseYaml(match[1] ?? '') as unknown;
    return typeof header === 'object' && header !== null && !Array.isArray(header)
      ? licenseFromCard(header as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

async function licenseFromReadme(
  client: HubClient,
  repo: string,
  commit: string,
  listing: HubTreeFile[],
  ctx: SourceContext,
): Promise<string | undefined> {
  const readme = listing.find((file) => file.path === 'README.md');
  if (!readme || readme.size > MAX_README_BYTES) return undefined;
  const expected = expectedDigestOf(readme);
  const bytes =
    (await readFromHfCache(readme, expected, repo, commit, ctx)) ??
    (await downloadSmallFile(client, readme, expected, repo, commit, ctx.signal));
  return licenseFromFrontMatter(bytes.toString('utf8'));
}

async function readFromHfCache(
  file: HubTreeFile,
  expected: ExpectedDigest,
  repo: string,
  commit: string,
  ctx: SourceContext,
): Promise<Buffer | undefined> {
  for (const candidate of hfCacheCandidates(ctx.env, repo, commit, file.path, expected.hex)) {
    try {
      if ((await hashFile(candidate, expected.algorithm, file.size, ctx.signal)) === expected.hex) {
        return await readFile(candidate);
      }
    } catch {
      ctx.signal?.throwIfAborted();
    }
  }
  return undefined;
}

async function downloadSmallFile(
  client: HubClient,
  file: HubTreeFile,
  expected: ExpectedDigest,
  repo: string,
  commit: string,
  signal: AbortSignal | undefined,
): Promise<Buffer> {
  const bytes = await withHubRetries(async () => {
    const { response } = await client.openFile({ repo, commit, path: file.path }, signal ? { signal } : {});
    try {
      return Buffer.from(await response.arrayBuffer());
    } catch (error) {
      signal?.throwIfAborted();
      throw new HubUnavailableError(
        'hf-download-interrupted',
        client.redact(`The download of ${repo}/${file.path} broke off: ${describeNetworkError(error)}.`),
        'Run again; check the network or proxy if it keeps breaking off.',
      );
    }
  }, signal);
  const actual = createContentHash(expected.algorithm, bytes.length).update(bytes).digest('hex');
  if (bytes.length !== file.size || actual !== expected.hex) {
    throw new ApertusError(
      'hf-digest-mismatch',
      `${file.path} of ${repo}@${commit} does not match its published ${expected.algorithm} (${expected.hex}).`,
      {
        kind: 'operation',
        hint: 'A proxy or mirror altered the file, or the download broke; run again, and check HF_ENDPOINT if it persists.',
        details: { path: file.path, expected: expected.hex, actual },
      },
    );
  }
  return bytes;
}
