/**
 * Where the Python `huggingface_hub` keeps downloads on this machine, read-only for us
 * (runtime-facts §2.6, hub-docs `local-cache.md`):
 * `$HF_HUB_CACHE` (default `$HF_HOME/hub`; `HF_HOME` default `$XDG_CACHE_HOME/huggingface`
 * or `~/.cache/huggingface`) / `models--ORG--NAME/` with `blobs/<etag>` (the etag is the
 * sha256 for LFS files and the git blob sha1 otherwise, so blobs are self-verifying) and
 * `snapshots/<commit>/<path>` as relative symlinks into `blobs/`.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { SourceContext } from '../types.js';
import { isCommitSha } from './parse-hf-source.js';

type Env = SourceContext['env'];

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}

export function hfHomeDir(env: Env): string {
  const explicit = nonEmpty(env.HF_HOME);
  if (explicit) return explicit;
  const xdg = nonEmpty(env.XDG_CACHE_HOME);
  if (xdg) return join(xdg, 'huggingface');
  return join(nonEmpty(env.HOME) ?? homedir(), '.cache', 'huggingface');
}

/** `HF_HUB_CACHE` > legacy `HUGGINGFACE_HUB_CACHE` > `$HF_HOME/hub` (`constants.py`). */
export function hfHubCacheDir(env: Env): string {
  return nonEmpty(env.HF_HUB_CACHE) ?? nonEmpty(env.HUGGINGFACE_HUB_CACHE) ?? join(hfHomeDir(env), 'hub');
}

/** `huggingface_hub`'s true values for its boolean variables (`constants.py` `_is_true`). */
const TRUE_VALUES = new Set(['1', 'ON', 'YES', 'TRUE']);

/**
 * `HF_HUB_OFFLINE` (or its alias `TRANSFORMERS_OFFLINE`) is set: "no HTTP calls will be
 * made to the Hugging Face Hub", only cached files are read (runtime-facts §2.7).
 */
export function isHfHubOffline(env: Env): boolean {
  return [env.HF_HUB_OFFLINE, env.TRANSFORMERS_OFFLINE].some(
    (value) => value !== undefined && TRUE_VALUES.has(value.trim().toUpperCase()),
  );
}

/** `models--ORG--NAME`, casing preserved. */
export function hfRepoCacheDir(env: Env, repo: string): string {
  return join(hfHubCacheDir(env), `models--${repo.split('/').join('--')}`);
}

/**
 * Places a file of this commit may already sit in the HF cache: the snapshot entry first,
 * then the blob named by its etag, which also finds files that another commit shares
 * (a new revision that only changed the README keeps every shard's blob).
 */
export function hfCacheCandidates(
  env: Env,
  repo: string,
  commit: string,
  path: string,
  etag: string,
): string[] {
  const repoDir = hfRepoCacheDir(env, repo);
  return [join(repoDir, 'snapshots', commit, ...path.split('/')), join(repoDir, 'blobs', etag)];
}

/** `snapshots/<commit>`: the files of that commit the cache holds, as links into `blobs/`. */
export function hfSnapshotDir(env: Env, repo: string, commit: string): string {
  return join(hfRepoCacheDir(env, repo), 'snapshots', commit);
}

/**
 * The commit a revision names in the cache, without asking the Hub: a 40-hex commit is
 * itself, a branch or tag is what `refs/<revision>` holds (huggingface_hub writes the file
 * when it downloads by that name). Undefined when the cache has no such ref.
 */
export async function hfCachedCommit(env: Env, repo: string, revision: string): Promise<string | undefined> {
  if (isCommitSha(revision)) return revision;
  // parseHfSource admits no '..' or leading '/', so the ref stays under refs/.
  const ref = join(hfRepoCacheDir(env, repo), 'refs', ...revision.split('/'));
  const text = await readFile(ref, 'utf8').catch(() => undefined);
  const commit = text?.trim();
  return commit !== undefined && isCommitSha(commit) ? commit : undefined;
}
