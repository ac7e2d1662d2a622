/**
 * The `hf:` source as written in a recipe: `hf:ORG/NAME[@REVISION]`, where REVISION is a
 * branch, a tag or a 40-hex commit and defaults to `main`. The pinned form that resolution
 * produces (`hf://ORG/NAME@<commit>`) parses too, so a resolved source can be fetched again.
 */
import { ApertusError } from '../../errors.js';

export interface HfSourceRef {
  /** 'ORG/NAME', casing preserved (the Hub and its cache folder names keep it). */
  repo: string;
  /** Branch, tag or commit, as written; 'main' when absent. */
  revision: string;
}

export const DEFAULT_REVISION = 'main';

const EXAMPLE = 'hf:swiss-ai/Apertus-8B-Instruct-2509@main';

/**
 * Repo id parts as `huggingface_hub` validates them (`validate_repo_id`): word characters,
 * '-' and '.', at most 96 each, no '--' or '..' (the cache folder uses '--' as separator).
 */
const REPO_PART = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?$/;

/** Branch and tag names in the style git accepts, conservatively; commits are 40 hex. */
const REVISION = /^[A-Za-z0-9_][A-Za-z0-9_.+/-]*$/;

export function isCommitSha(revision: string): boolean {
  return /^[0-9a-f]{40}$/.test(revision);
}

export function parseHfSource(source: string): HfSourceRef {
  const invalid = (why: string): never => {
    throw new ApertusError(
      'hf-source-invalid',
      `The source ${JSON.stringify(source)} is not valid: ${why}.`,
      {
        hint: `Write it as hf:ORG/NAME or hf:ORG/NAME@REVISION (a branch, tag or 40-hex commit), e.g. ${EXAMPLE}.`,
      },
    );
  };
  const prefix = source.startsWith('hf://') ? 'hf://' : source.startsWith('hf:') ? 'hf:' : undefined;
  if (prefix === undefined) return invalid("it does not start with 'hf:'");
  const body = source.slice(prefix.length);
  const at = body.indexOf('@');
  const repo = at === -1 ? body : body.slice(0, at);
  const revision = at === -1 ? DEFAULT_REVISION : body.slice(at + 1);
  const parts = repo.split('/');
  if (parts.length !== 2) {
    return invalid(
      parts.length === 1
        ? 'the repository needs its organisation (ORG/NAME)'
        : 'the repository is not ORG/NAME',
    );
  }
  for (const part of parts) {
    if (!REPO_PART.test(part) || part.includes('--') || part.includes('..')) {
      invalid(`${JSON.stringify(part)} is not a valid repository or organisation name`);
    }
  }
  if (
    !REVISION.test(revision) ||
    revision.includes('..') ||
    revision.includes('//') ||
    revision.endsWith('/') ||
    revision.endsWith('.lock')
  ) {
    invalid(
      revision === ''
        ? "the revision after '@' is empty"
        : `${JSON.stringify(revision)} is not a valid revision`,
    );
  }
  return { repo, revision };
}

/**
 * A file path from a listing is joined onto local folders: refuse anything that could
 * leave them ('..', absolute, backslashes, empty segments), whatever the server sends.
 */
export function isSafeRepoPath(path: string): boolean {
  if (path === '' || path.startsWith('/') || path.includes('\\') || path.includes('\0')) return false;
  return path.split('/').every((segment) => segment !== '' && segment !== '.' && segment !== '..');
}
