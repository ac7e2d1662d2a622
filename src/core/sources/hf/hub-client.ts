/**
 * The few Hugging Face Hub endpoints a snapshot download needs, over Node's fetch
 * (runtime-facts §2): revision -> commit, the recursive tree listing, and file downloads
 * through `resolve` with the Hub's redirect and auth rules. The token goes only into the
 * Authorization header sent to the Hub's own origin; every text that leaves this module
 * (error messages, hints, details) passes through `redact` first.
 */

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApertusError } from '../../errors.js';
import {
  API_ATTEMPTS,
  boundedErrorText,
  describeNetworkError,
  getFollowingRedirects,
  MAX_REDIRECTS,
  RETRY_STATUSES,
  retryAfterMs,
} from '../http.js';
import { SourceUnavailableError, withRetries } from '../retry.js';
import type { SourceContext } from '../types.js';
import { hfHomeDir } from './local-hf-cache.js';

export const DEFAULT_HUB_URL = 'https://huggingface.co';

type Env = SourceContext['env'];

export interface HubClientOptions {
  /** Overrides `HF_ENDPOINT` (an internal mirror, or a test server). */
  hubUrl?: string;
  env: Env;
}

export interface HubModelInfo {
  /** The commit the revision points at, 40 hex. */
  sha: string;
  /** The model card's YAML header as the Hub parsed it, when it returns one. */
  cardData?: Record<string, unknown>;
}

export interface HubTreeFile {
  path: string;
  size: number;
  /** Git blob id (sha1). For LFS files this is the id of the pointer file, not the content. */
  oid: string;
  /** Present for LFS files: `oid` is the sha256 of the content. */
  lfs?: { oid: string; size: number };
}

export interface HubFileResponse {
  /** The final answer after redirects (the CDN's for LFS files). */
  response: Response;
  /** Headers of the last answer from the Hub's own origin (X-Repo-Commit, X-Linked-Etag...). */
  hubHeaders: Headers;
}

/** Where an error happened, for its message. */
export interface HubTarget {
  repo: string;
  revision?: string;
  path?: string;
}

export interface HubClient {
  /** The Hub's base URL, without a trailing slash. */
  readonly endpoint: string;
  readonly hasToken: boolean;
  modelInfo(repo: string, revision: string, signal?: AbortSignal): Promise<HubModelInfo>;
  listFiles(repo: string, commit: string, signal?: AbortSignal): Promise<HubTreeFile[]>;
  resolveUrl(repo: string, commit: string, path: string): string;
  /**
   * GET a file at a commit through `resolve`, from byte `start` on, up to byte `end`
   * (inclusive) when given (a Range request when start > 0 or end is given: the caller
   * must check for 206). Throws ApertusError for error statuses.
   */
  openFile(
    target: { repo: string; commit: string; path: string },
    options?: { start?: number; end?: number; signal?: AbortSignal },
  ): Promise<HubFileResponse>;
  /** Removes the token, URL credentials and signed query strings from a text. */
  redact(text: string): string;
}

const USER_AGENT = 'apertus (+https://huggingface.co/docs/hub/api)';
/** The statuses `huggingface_hub` retries (§2.3); network failures are retried too. */

/** A Hub or network failure, worth retrying (see sources/retry.ts). */
export class HubUnavailableError extends SourceUnavailableError {}

/** Runs `operation`, retrying Hub/network failures with backoff; aborts stay aborts. */
export function withHubRetries<T>(
  operation: () => Promise<T>,
  signal: AbortSignal | undefined,
  attempts = API_ATTEMPTS,
): Promise<T> {
  return withRetries(operation, signal, attempts);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

/**
 * `HF_TOKEN` wins over the token `huggingface-cli login` stored in `$HF_HOME/token`
 * (§2.3; `HF_TOKEN_PATH` moves that file, `HUGGING_FACE_HUB_TOKEN` is the legacy variable).
 */
async function readToken(env: Env): Promise<string | undefined> {
  const fromEnv = nonEmpty(env.HF_TOKEN) ?? nonEmpty(env.HUGGING_FACE_HUB_TOKEN);
  if (fromEnv) return fromEnv;
  const path = nonEmpty(env.HF_TOKEN_PATH) ?? join(hfHomeDir(env), 'token');
  try {
    return nonEmpty(await readFile(path, 'utf8'));
  } catch {
    return undefined;
  }
}

function parseEndpoint(raw: string, from: string): URL {
  const invalid = (why: string): never => {
    throw new ApertusError('hf-endpoint-invalid', `${from} is not a usable Hub URL: ${why}.`, {
      hint: `Set it to the Hub's base URL, e.g. ${DEFAULT_HUB_URL} or https://hf-mirror.internal; put credentials in HF_TOKEN, not in the URL.`,
    });
  };
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return invalid('it is not a URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') invalid('it is not http(s)');
  if (url.username !== '' || url.password !== '') invalid('it carries credentials');
  if (url.search !== '' || url.hash !== '') invalid('it has a query or fragment');
  return url;
}

export async function createHubClient(options: HubClientOptions): Promise<HubClient> {
  const explicit = nonEmpty(options.hubUrl);
  const fromEnv = nonEmpty(options.env.HF_ENDPOINT);
  const base = explicit
    ? parseEndpoint(explicit, `--hub-url ${explicit}`)
    : fromEnv
      ? parseEndpoint(fromEnv, `HF_ENDPOINT=${fromEnv}`)
      : new URL(DEFAULT_HUB_URL);
  const endpoint = base.href.replace(/\/+$/, '');
  const origin = base.origin;
  const token = await readToken(options.env);

  const redact = (text: string): string => {
    let out = text;
    if (token && token.length >= 8) out = out.split(token).join('***');
    // Hub user tokens look like hf_<34+ letters>; catch one even when it is not ours.
    out = out.replace(/\bhf_[A-Za-z0-9]{20,}\b/g, '***');
    out = out.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@"'<>]*@/gi, '$1');
    // Signed CDN URLs carry their signature in the query.
    out = out.replace(/\b([a-z][a-z0-9+.-]*:\/\/[^\s?#"'<>]*)\?[^\s#"'<>]*/gi, '$1');
    return out;
  };

  // §2.1: {EP}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(filename)}
  const resolveUrl = (repo: string, commit: string, path: string): string => {
    const encodedPath = path.split('/').map(encodeURIComponent).join('/');
    return `${endpoint}/${repo}/resolve/${encodeURIComponent(commit)}/${encodedPath}`;
  };
  const pageUrl = (repo: string) => `${endpoint}/${repo}`;
  const tokensUrl = `${endpoint}/settings/tokens`;

  const unreachable = (url: URL, error: unknown): HubUnavailableError => {
    const reason = describeNetworkError(error);
    return new HubUnavailableError(
      'hf-unreachable',
      redact(`Cannot reach ${url.origin}: ${reason}.`),
      url.origin === origin
        ? 'Check the network and proxy settings, or point HF_ENDPOINT (or --hub-url) at a reachable mirror.'
        : 'The Hub redirected the download to this host; check that the network or proxy lets it through.',
      undefined,
      new Error(redact(reason)),
    );
  };

  /** GET with redirects followed by hand, so Authorization never leaves the Hub's origin. */
  const send = async (
    url: string,
    init: { signal?: AbortSignal | undefined; headers?: Record<string, string> },
  ): Promise<{ response: Response; hubHeaders: Headers; fromHub: boolean }> => {
    let hubHeaders: Headers | undefined;
    const { response, url: last } = await getFollowingRedirects(url, {
      origin,
      // §2.2: "If url domain is different => we are downloading from a CDN => url is signed
      // => don't send auth". Byte offsets for Range and sizes are those of the stored file (§2.2, §2.4).
      authorization: token ? `Bearer ${token}` : undefined,
      userAgent: USER_AGENT,
      headers: init.headers,
      signal: init.signal,
      maxRedirects: MAX_REDIRECTS,
      unreachable,
      tooManyRedirects: () =>
        new ApertusError('hf-bad-response', redact(`Too many redirects from ${url}.`), {
          kind: 'operation',
          hint: 'A proxy or mirror in between redirects in a loop; check HF_ENDPOINT and the proxy settings.',
        }),
      downgraded: (to) =>
        new ApertusError(
          'hf-bad-response',
          redact(`${url} redirected to the plain-HTTP address ${to.origin}.`),
          {
            kind: 'operation',
            hint: 'Check HF_ENDPOINT and the proxy configuration; apertus does not downgrade to HTTP.',
          },
        ),
      onResponse: (at, response) => {
        if (at.origin === origin) hubHeaders = response.headers;
      },
    });
    return { response, hubHeaders: hubHeaders ?? response.headers, fromHub: last.origin === origin };
  };

  const fail = async (response: Response, target: HubTarget): Promise<never> => {
    const errorCode = response.headers.get('x-error-code') ?? '';
    const serverText = redact(await errorText(response));
    const said = serverText ? ` The Hub said: ${serverText}` : '';
    const status = response.status;
    const where = `${target.repo}${target.path ? `/${target.path}` : ''}`;
    if (errorCode === 'GatedRepo') {
      throw new ApertusError(
        'hf-gated',
        redact(
          token
            ? `${target.repo} is a gated model and the account behind HF_TOKEN has no access to it yet (HTTP ${status}).${said}`
            : `${target.repo} is a gated model and no HF_TOKEN is set (HTTP ${status}).${said}`,
        ),
        {
          hint: token
            ? `Open ${pageUrl(target.repo)} while logged in as the account that owns HF_TOKEN and accept the model's terms (manually gated models wait for approval), then run again.`
            : `Open ${pageUrl(target.repo)}, log in and accept the model's terms, create a read token at ${tokensUrl}, then run again with HF_TOKEN=<token> in the environment.`,
          details: { status, repo: target.repo },
        },
      );
    }
    if (
      status === 404 ||
      errorCode === 'RepoNotFound' ||
      errorCode === 'RevisionNotFound' ||
      errorCode === 'EntryNotFound'
    ) {
      // §2.3: the Hub answers 401 for private, gated and missing repos alike when no token is sent.
      const what =
        errorCode === 'RevisionNotFound'
          ? `Revision ${target.revision ?? '?'} does not exist in ${target.repo}`
          : errorCode === 'EntryNotFound' || (target.path !== undefined && errorCode !== 'RepoNotFound')
            ? `${where} does not exist at ${target.revision ?? 'this revision'}`
            : `${target.repo} was not found on ${endpoint}`;
      throw new ApertusError('hf-not-found', redact(`${what} (HTTP ${status}).${said}`), {
        hint:
          errorCode === 'RevisionNotFound'
            ? `Check the branch, tag or commit on ${pageUrl(target.repo)}; write it after '@' in the source.`
            : token
              ? `Check the ORG/NAME spelling on ${pageUrl(target.repo)} and that the account behind HF_TOKEN can read it.`
              : `Check the ORG/NAME spelling on ${pageUrl(target.repo)}; if the repository is private or gated, set HF_TOKEN to a read token (${tokensUrl}).`,
        details: { status, repo: target.repo },
      });
    }
    if (status === 401 || status === 403) {
      throw new ApertusError(
        'hf-unauthorized',
        redact(
          status === 401 && token
            ? `The Hub rejected HF_TOKEN for ${where} (HTTP 401).${said}`
            : status === 401
              ? `${where} needs authentication (HTTP 401).${said}`
              : `HF_TOKEN does not allow reading ${where} (HTTP 403).${said}`,
        ),
        {
          hint:
            status === 401 && token
              ? `The token is invalid or expired: create a new read token at ${tokensUrl} and set HF_TOKEN to it.`
              : status === 401
                ? `Set HF_TOKEN to a read token (${tokensUrl}) of an account that can read ${target.repo}; for gated models accept the terms at ${pageUrl(target.repo)} first.`
                : `Use a token with read access to ${target.repo} (a fine-grained token must list it), and accept the model's terms at ${pageUrl(target.repo)}.`,
          details: { status, repo: target.repo },
        },
      );
    }
    if (RETRY_STATUSES.has(status)) {
      throw new HubUnavailableError(
        'hf-unavailable',
        redact(`The Hub answered HTTP ${status} for ${where}.${said}`),
        status === 429
          ? 'The Hub is rate-limiting this machine; wait a few minutes and run again (downloads resume).'
          : 'The Hub or a proxy failed; run again later (downloads resume).',
        retryAfterMs(response.headers.get('retry-after')),
      );
    }
    throw new ApertusError(
      'hf-request-failed',
      redact(`The Hub answered HTTP ${status} for ${where}.${said}`),
      {
        kind: 'operation',
        hint: 'Check HF_ENDPOINT (or --hub-url) and any proxy in between, then run again.',
        details: { status, repo: target.repo },
      },
    );
  };

  const getJson = async (url: string, target: HubTarget, signal?: AbortSignal) =>
    withHubRetries(async () => {
      const { response } = await send(url, { signal, headers: { accept: 'application/json' } });
      if (!response.ok) await fail(response, target);
      let body: unknown;
      try {
        body = await response.json();
      } catch (error) {
        signal?.throwIfAborted();
        throw new ApertusError('hf-bad-response', redact(`${url} did not answer with JSON.`), {
          kind: 'operation',
          hint: 'Check that HF_ENDPOINT (or --hub-url) points at the Hub or a Hub mirror, not a web proxy page.',
          cause: new Error(redact(describeNetworkError(error))),
        });
      }
      return { body, headers: response.headers, url: response.url || url };
    }, signal);

  const badResponse = (what: string): never => {
    throw new ApertusError('hf-bad-response', redact(what), {
      kind: 'operation',
      hint: 'Check that HF_ENDPOINT (or --hub-url) points at the Hub or a Hub mirror.',
    });
  };

  return {
    endpoint,
    hasToken: token !== undefined,
    redact,

    async modelInfo(repo, revision, signal) {
      // §2.1: GET {EP}/api/models/{repo_id}/revision/{quote(revision, safe='')}
      const url = `${endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}`;
      const { body } = await getJson(url, { repo, revision }, signal);
      const info = body as { sha?: unknown; cardData?: unknown } | null;
      if (typeof info?.sha !== 'string' || !/^[0-9a-f]{40}$/.test(info.sha)) {
        badResponse(`The Hub's model info for ${repo}@${revision} has no commit sha.`);
      }
      const card = info?.cardData;
      return {
        sha: info?.sha as string,
        ...(typeof card === 'object' && card !== null && !Array.isArray(card)
          ? { cardData: card as Record<string, unknown> }
          : {}),
      };
    },

    async listFiles(repo, commit, signal) {
      // §2.1: recursive tree listing, paginated by `Link: <...>; rel="next"`. Without
      // expand: the entries still carry size, oid and lfs, and expand (last commit, security
      // scan) costs the server enough that it pages 50 entries instead of 1000
      // (`HfApi.list_repo_tree` docstring).
      let next: string | undefined =
        `${endpoint}/api/models/${repo}/tree/${encodeURIComponent(commit)}?recursive=true&expand=false`;
      const seen = new Set<string>();
      const files: HubTreeFile[] = [];
      while (next !== undefined) {
        if (seen.has(next)) badResponse(`The tree listing of ${repo} paginates in a loop.`);
        seen.add(next);
        const page = await getJson(next, { repo, revision: commit }, signal);
        if (!Array.isArray(page.body)) badResponse(`The tree listing of ${repo} is not a JSON array.`);
        for (const entry of page.body as unknown[]) {
          const file = parseTreeEntry(entry);
          if (file === 'directory') continue;
          if (file === undefined) {
            badResponse(
              `The tree listing of ${repo} has an entry without path, size or oid: ${JSON.stringify(entry).slice(0, 200)}.`,
            );
          }
          files.push(file as HubTreeFile);
        }
        const link = nextLink(page.headers.get('link'));
        next = link === undefined ? undefined : new URL(link, page.url).href;
      }
      return files;
    },

    resolveUrl,

    async openFile(target, options = {}) {
      const { start = 0, end, signal } = options;
      const url = resolveUrl(target.repo, target.commit, target.path);
      const range = end !== undefined ? `bytes=${start}-${end}` : start > 0 ? `bytes=${start}-` : undefined;
      const result = await send(url, { signal, headers: range ? { range } : {} });
      const { response, hubHeaders, fromHub } = result;
      const hubTarget = { repo: target.repo, revision: target.commit, path: target.path };
      if (!response.ok && response.status !== 416) {
        if (fromHub) await fail(response, hubTarget);
        // A CDN refusing its own signed URL (expired, say): asking the Hub again gets a fresh one.
        const said = redact(await errorText(response));
        throw new HubUnavailableError(
          'hf-unavailable',
          redact(
            `The download host ${new URL(response.url || url).origin} answered HTTP ${response.status} for ${target.repo}/${target.path}.${said ? ` It said: ${said}` : ''}`,
          ),
          'Run again (downloads resume); if it persists, check that the network or proxy lets this host through.',
          retryAfterMs(response.headers.get('retry-after')),
        );
      }
      // §2.2: without X-Repo-Commit the answer did not come from the Hub (a proxy or
      // firewall page); `huggingface_hub` refuses it the same way.
      const repoCommit = hubHeaders.get('x-repo-commit');
      if (repoCommit === null || repoCommit !== target.commit) {
        await response.body?.cancel().catch(() => {});
        badResponse(
          repoCommit === null
            ? `${endpoint} answered for ${target.repo}/${target.path} without X-Repo-Commit: it does not look like the Hugging Face Hub (a proxy or firewall may be answering instead).`
            : `${endpoint} served ${target.repo}/${target.path} from commit ${repoCommit} instead of ${target.commit}.`,
        );
      }
      return result;
    },
  };
}

function parseTreeEntry(entry: unknown): HubTreeFile | 'directory' | undefined {
  if (typeof entry !== 'object' || entry === null) return undefined;
  const raw = entry as { type?: unknown; path?: unknown; size?: unknown; oid?: unknown; lfs?: unknown };
  if (raw.type === 'directory') return 'directory';
  if (raw.type !== 'file' || typeof raw.path !== 'string' || typeof raw.oid !== 'string') return undefined;
  if (!/^[0-9a-f]{40}$/.test(raw.oid)) return undefined;
  const lfsRaw = raw.lfs as { oid?: unknown; size?: unknown } | null | undefined;
  let lfs: HubTreeFile['lfs'];
  if (lfsRaw !== undefined && lfsRaw !== null) {
    if (typeof lfsRaw.oid !== 'string' || !/^[0-9a-f]{64}$/.test(lfsRaw.oid)) return undefined;
    if (typeof lfsRaw.size !== 'number' || !Number.isSafeInteger(lfsRaw.size) || lfsRaw.size < 0)
      return undefined;
    lfs = { oid: lfsRaw.oid, size: lfsRaw.size };
  }
  // For LFS files the Hub reports the content size in both `size` and `lfs.size`.
  const size = lfs?.size ?? raw.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return undefined;
  return { path: raw.path, size, oid: raw.oid, ...(lfs ? { lfs } : {}) };
}

/** The `rel="next"` target of an RFC 8288 Link header (`utils/_pagination.py`). */
export function nextLink(header: string | null): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(/,(?=\s*<)/)) {
    const match = /^\s*<([^>]*)>(.*)$/.exec(part);
    if (match && /;\s*rel\s*=\s*"?(?:[^";]*\s)?next(?:\s[^";]*)?"?\s*(?:;|$)/i.test(match[2] ?? '')) {
      return match[1];
    }
  }
  return undefined;
}

/** The Hub's own explanation: X-Error-Message, else a JSON `error`, else the start of the body. */
async function errorText(response: Response): Promise<string> {
  const header = response.headers.get('x-error-message');
  let text = header ?? '';
  if (!header) {
    try {
      const body = (await response.text()).slice(0, 4096);
      try {
        const parsed = JSON.parse(body) as { error?: unknown };
        text = typeof parsed.error === 'string' ? parsed.error : body;
      } catch {
        text = /^\s*</.test(body) ? '' : body;
      }
    } catch {
      text = '';
    }
  } else {
    await response.body?.cancel().catch(() => {});
  }
  return boundedErrorText(text);
}
