/**
 * Where the Python `huggingface_hub` keeps downloads on this machine, read-only for us
 * (runtime-facts §2.6, hub-docs `local-cache.md`):
 * `$HF_HUB_CACHE` (default `$HF_HOME/hub`; `HF_HOME` default `$XDG_CACHE_HOME/huggingface`
 * or `~/.cache/huggingface`) / `models--ORG--NAME/` with `blobs/<etag>` (the etag is the
 * sha256 for LFS files and the git blob sha1 otherwise, so blobs are self-verifying) and
 * `snapshots/<commit>/<path>` as relative symlinks into `blobs/`.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { SourceContext } from '../types.js';

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
