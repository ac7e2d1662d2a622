/**
 * The pull side of the OCI distribution API over Node's fetch (runtime-facts §5.1):
 *
 * - `GET /v2/` first; a 401 with `WWW-Authenticate: Bearer realm,service` makes the client
 *   fetch a token from the realm for `repository:<name>:pull` (Basic credentials attached
 *   when it has some) and send `Authorization: Bearer`; `Basic realm` makes it send Basic
 *   credentials. A later 401 (expired token, a scope the challenge names) re-authenticates once.
 * - Manifests are asked for with both OCI and Docker Accept types, and every manifest and blob
 *   body is checked against its digest (the requested one, or Docker-Content-Digest by tag).
 * - Redirects are followed by hand: Authorization goes only to the registry's own origin,
 *   never across host boundaries (spec §API), e.g. to a storage backend's signed URL.
 *
 * Credentials and tokens go only into Authorization headers. Every text that leaves this
 * module (error messages, hints, details) passes through `redact` first.
 */

import { createHash } from 'node:crypto';
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
import {
  IMAGE_MEDIA_TYPE,
  isImageManifestMediaType,
  isIndexMediaType,
  MANIFEST_ACCEPT,
} from './image-media-types.js';
import { imageName, type OciReference, registryBaseUrl } from './parse-oci-reference.js';
import { findRegistryCredentials, type RegistryCredentials } from './registry-credentials.js';
import { type AuthChallenge, findChallenge, parseWwwAuthenticate } from './www-authenticate.js';

type Env = SourceContext['env'];

export interface RegistryClientOptions {
  reference: Pick<OciReference, 'registry' | 'host' | 'scheme' | 'repository'>;
  env: Env;
  /** Overrides what the environment and login files hold (see registry-credentials.ts). */
  credentials?: RegistryCredentials;
  /** Ask token services for push as well as pull (`apertus mirror`). */
  push?: boolean;
}

export interface RegistryManifest {
  mediaType: string;
  /** sha256 of the body, verified. */
  digest: string;
  bytes: Buffer;
}

export interface RegistryClient {
  /** Base URL of the distribution API, without a trailing slash. */
  readonly baseUrl: string;
  readonly hasCredentials: boolean;
  /** GET a manifest or index by tag or digest; the body is verified against its digest. */
  getManifest(tagOrDigest: string, signal?: AbortSignal): Promise<RegistryManifest>;
  /** GET a small blob (a config) whole, verified against its digest. */
  getBlob(digest: string, options: { maxBytes: number; signal?: AbortSignal }): Promise<Buffer>;
  /**
   * GET a blob from byte `start` on (a Range request when start > 0). The response is 200 or
   * 206: the caller checks which, reads the body and verifies the digest. Errors throw.
   */
  openBlob(digest: string, options?: { start?: number; signal?: AbortSignal }): Promise<Response>;
  /** Removes credentials, tokens and URL secrets from a text. */
  redact(text: string): string;
  /** HEAD a blob: whether the repository already has it (then it is not sent again). */
  hasBlob(digest: string, signal?: AbortSignal): Promise<boolean>;
  /**
   * Uploads a blob monolithically (distribution spec "POST then PUT"): POST opens an upload
   * session, one PUT with `?digest=` sends the bytes; the registry checks the digest.
   * `body` is called for each attempt, so a retried upload starts from its first byte.
   */
  pushBlob(
    blob: { digest: string; size: number },
    body: () => AsyncIterable<Uint8Array>,
    signal?: AbortSignal,
  ): Promise<void>;
  /** PUTs a manifest under a tag or its digest; the registry's digest must equal ours. */
  putManifest(
    reference: string,
    manifest: { mediaType: string; bytes: Buffer },
    signal?: AbortSignal,
  ): Promise<string>;
}

/** The distribution spec lets registries refuse manifests over 4 MiB; nothing legitimate is bigger. */
export const MAX_MANIFEST_BYTES = 4 << 20;
const USER_AGENT = 'apertus (+https://github.com/opencontainers/distribution-spec)';
const DIGEST = /^(sha256|sha512):[0-9a-f]+$/;

/** A registry or network failure, worth retrying (see sources/retry.ts). */
export class RegistryUnavailableError extends SourceUnavailableError {}

/** Runs `operation`, retrying registry/network failures with backoff; aborts stay aborts. */
export function withRegistryRetries<T>(
  operation: () => Promise<T>,
  signal: AbortSignal | undefined,
  attempts = API_ATTEMPTS,
): Promise<T> {
  return withRetries(operation, signal, attempts);
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export async function createRegistryClient(options: RegistryClientOptions): Promise<RegistryClient> {
  const { reference } = options;
  const baseUrl = registryBaseUrl(reference);
  const origin = new URL(baseUrl).origin;
  const name = imageName(reference);
  const credentials = await findRegistryCredentials(reference, options.env, options.credentials);
  const secrets = new Set<string>();
  if (credentials !== undefined) {
    secrets.add(credentials.password);
    secrets.add(basicValue(credentials));
  }
  /** The Authorization header value for the registry's origin, once authentication is known. */
  let authorization: string | undefined;
  let probed: Promise<void> | undefined;

  const redact = (text: string): string => {
    let out = text;
    for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
      if (secret.length >= 4) out = out.split(secret).join('***');
    }
    out = out.replace(/\b(Bearer|Basic)\s+[A-Za-z0-9\-._~+/]+=*/gi, '$1 ***');
    out = out.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@"'<>]*@/gi, '$1');
    // Signed storage URLs carry their signature in the query.
    out = out.replace(/\b([a-z][a-z0-9+.-]*:\/\/[^\s?#"'<>]*)\?[^\s#"'<>]*/gi, '$1');
    return out;
  };

  const unreachable = (url: URL, error: unknown): RegistryUnavailableError => {
    const reason = describeNetworkError(error);
    return new RegistryUnavailableError(
      'oci-unreachable',
      redact(`Cannot reach ${url.origin}: ${reason}.`),
      url.origin === origin
        ? `Check the network and proxy settings for ${reference.registry}${reference.scheme === 'http' ? ' (it is used over plain HTTP)' : ''}.`
        : `${reference.registry} redirected the download to ${url.origin}; check that the network or proxy lets it through.`,
      undefined,
      new Error(redact(reason)),
    );
  };

  /** One GET with redirects followed by hand, so Authorization never leaves the registry's origin. */
  const send = async (
    url: string,
    init: { signal?: AbortSignal | undefined; headers?: Record<string, string> },
  ): Promise<Response> => {
    const { response } = await getFollowingRedirects(url, {
      origin,
      authorization,
      userAgent: USER_AGENT,
      headers: init.headers,
      signal: init.signal,
      maxRedirects: MAX_REDIRECTS,
      unreachable,
      tooManyRedirects: () =>
        new ApertusError('oci-bad-response', redact(`Too many redirects from ${url}.`), {
          kind: 'operation',
          hint: `A proxy or the registry's storage redirects in a loop; check the proxy settings for ${reference.registry}.`,
        }),
      downgraded: () =>
        new ApertusError(
          'oci-bad-response',
          redact(`${reference.registry} redirected ${url} to a plain-HTTP address.`),
          {
            kind: 'operation',
            hint: 'Check the registry and proxy configuration; apertus does not downgrade to HTTP.',
          },
        ),
    });
    return response;
  };

  const fetchToken = async (challenge: AuthChallenge, signal: AbortSignal | undefined): Promise<string> => {
    const realm = challenge.params.realm;
    let url: URL;
    try {
      url = new URL(realm ?? '');
    } catch {
      throw new ApertusError(
        'oci-auth-failed',
        redact(
          `${reference.registry} asked for a bearer token but named no usable token realm (${realm ?? 'none'}).`,
        ),
        { kind: 'operation', hint: `Check that ${baseUrl} is a container registry.` },
      );
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new ApertusError('oci-auth-failed', redact(`The token realm ${url.href} is not http(s).`), {
        kind: 'operation',
        hint: `Check that ${baseUrl} is a container registry.`,
      });
    }
    if (url.protocol === 'http:' && reference.scheme === 'https') {
      throw new ApertusError(
        'oci-auth-failed',
        redact(`${reference.registry} sends clients to fetch tokens over plain HTTP (${url.origin}).`),
        {
          kind: 'operation',
          hint: "apertus does not send credentials or take tokens over plain HTTP for an HTTPS registry; fix the registry's token realm.",
        },
      );
    }
    if (challenge.params.service !== undefined) url.searchParams.set('service', challenge.params.service);
    // The probe's challenge names no scope; a repository request's may name a wider one.
    const scope =
      challenge.params.scope ?? `repository:${reference.repository}:${options.push ? 'pull,push' : 'pull'}`;
    for (const one of scope.split(' ')) if (one !== '') url.searchParams.append('scope', one);
    const headers: Record<string, string> = {
      'user-agent': USER_AGENT,
      accept: 'application/json',
    };
    if (credentials !== undefined) headers.authorization = basicValue(credentials);
    let response: Response;
    try {
      // Tokens are asked for directly; a realm that redirects is not followed with credentials.
      response = await fetch(url, { headers, redirect: 'error', ...(signal ? { signal } : {}) });
    } catch (error) {
      signal?.throwIfAborted();
      throw unreachable(url, error);
    }
    if (response.status === 401 || response.status === 403) {
      const said = await errorText(response);
      throw new ApertusError(
        'oci-unauthorized',
        redact(
          credentials === undefined
            ? `The token service of ${reference.registry} refused anonymous access to ${name} (HTTP ${response.status}).${said}`
            : `The token service of ${reference.registry} rejected the credentials for ${name} (HTTP ${response.status}).${said}`,
        ),
        {
          hint: credentialsHint(reference.registry, credentials !== undefined),
          details: { status: response.status },
        },
      );
    }
    if (!response.ok) {
      const said = await errorText(response);
      const message = redact(`The token service ${url.origin} answered HTTP ${response.status}.${said}`);
      if (RETRY_STATUSES.has(response.status)) {
        throw new RegistryUnavailableError('oci-unavailable', message, 'Run again later; downloads resume.');
      }
      throw new ApertusError('oci-auth-failed', message, {
        kind: 'operation',
        hint: `Check the registry's token service; try \`skopeo inspect docker://${name}\` for comparison.`,
      });
    }
    let body: { token?: unknown; access_token?: unknown };
    try {
      body = (await response.json()) as typeof body;
    } catch {
      signal?.throwIfAborted();
      body = {};
    }
    // runtime-facts §5.1 step 2: `token`, or `access_token` (OAuth 2 style).
    const token = typeof body.token === 'string' && body.token !== '' ? body.token : body.access_token;
    if (typeof token !== 'string' || token === '') {
      throw new ApertusError(
        'oci-auth-failed',
        redact(`The token service ${url.origin} returned no token.`),
        {
          kind: 'operation',
          hint: `Check that ${reference.registry}'s token service is a Docker registry token service.`,
        },
      );
    }
    secrets.add(token);
    return token;
  };

  /** Sets `authorization` from a 401's challenges; returns false when there is nothing new to try. */
  const authenticate = async (response: Response, signal: AbortSignal | undefined): Promise<boolean> => {
    const challenges = parseWwwAuthenticate(response.headers.get('www-authenticate') ?? '');
    const bearer = findChallenge(challenges, 'bearer');
    if (bearer !== undefined) {
      authorization = `Bearer ${await fetchToken(bearer, signal)}`;
      return true;
    }
    if (findChallenge(challenges, 'basic') !== undefined && credentials !== undefined) {
      const basic = basicValue(credentials);
      if (authorization === basic) return false;
      authorization = basic;
      return true;
    }
    return false;
  };

  const probe = async (signal: AbortSignal | undefined): Promise<void> => {
    const url = `${baseUrl}/v2/`;
    await withRegistryRetries(async () => {
      let response = await send(url, { signal });
      if (response.status === 401) {
        await discard(response);
        if (await authenticate(response, signal)) response = await send(url, { signal });
      }
      if (response.ok) {
        await discard(response);
        return;
      }
      if (response.status === 404) {
        await discard(response);
        throw new ApertusError(
          'oci-not-a-registry',
          redact(`${baseUrl} does not serve the registry API (GET /v2/ answered 404).`),
          { hint: 'Check the registry name in the source; it is the part before the first "/".' },
        );
      }
      await fail(response, `${reference.registry}`);
    }, signal);
  };

  /** GET with authentication: probe once, and re-authenticate once on a 401 (expiry, wider scope). */
  const request = async (
    path: string,
    init: { signal?: AbortSignal | undefined; headers?: Record<string, string> },
  ): Promise<Response> => {
    probed ??= probe(init.signal).catch((error: unknown) => {
      probed = undefined;
      throw error;
    });
    await probed;
    const url = `${baseUrl}/v2/${reference.repository}/${path}`;
    const response = await send(url, init);
    if (response.status !== 401) return response;
    await discard(response);
    if (!(await authenticate(response, init.signal))) return response;
    return send(url, init);
  };

  /**
   * A request that sends (HEAD, POST, PUT) with the registry's authorization, never across
   * origins or down to plain HTTP; a 401 re-authenticates once (a push needs a wider token).
   */
  const write = async (
    method: 'HEAD' | 'POST' | 'PUT',
    target: string | URL,
    init: {
      signal?: AbortSignal | undefined;
      headers?: Record<string, string>;
      body?: () => AsyncIterable<Uint8Array> | Buffer;
    },
  ): Promise<Response> => {
    probed ??= probe(init.signal).catch((error: unknown) => {
      probed = undefined;
      throw error;
    });
    await probed;
    const url =
      typeof target === 'string' ? new URL(`${baseUrl}/v2/${reference.repository}/${target}`) : target;
    if (new URL(baseUrl).protocol === 'https:' && url.protocol !== 'https:') {
      return badResponse(
        `${reference.registry} sent the upload to a plain-HTTP address.`,
        'Check the registry and proxy configuration; apertus does not downgrade to HTTP.',
      );
    }
    const attempt = async (): Promise<Response> => {
      const headers: Record<string, string> = { 'user-agent': USER_AGENT, ...init.headers };
      if (authorization !== undefined && url.origin === origin) headers.authorization = authorization;
      try {
        return await fetch(url, {
          method,
          headers,
          redirect: 'manual',
          ...(init.body ? { body: init.body() as RequestInit['body'], duplex: 'half' } : {}),
          ...(init.signal ? { signal: init.signal } : {}),
        } as RequestInit);
      } catch (error) {
        init.signal?.throwIfAborted();
        throw unreachable(url, error);
      }
    };
    let response = await attempt();
    if (response.status === 401) {
      await discard(response);
      if (await authenticate(response, init.signal)) response = await attempt();
    }
    return response;
  };

  const fail = async (response: Response, what: string): Promise<never> => {
    const status = response.status;
    const said = await errorText(response);
    const codes = registryErrorCodes(said);
    if (status === 401 || status === 403) {
      throw new ApertusError(
        'oci-unauthorized',
        redact(
          status === 401 && credentials === undefined
            ? `${what} needs authentication (HTTP 401).${said}`
            : status === 401
              ? `${reference.registry} rejected the credentials for ${what} (HTTP 401).${said}`
              : `The credentials do not allow access to ${what} (HTTP 403).${said}`,
        ),
        { hint: credentialsHint(reference.registry, credentials !== undefined), details: { status } },
      );
    }
    if (status === 404 || codes.some((code) => code.endsWith('_UNKNOWN'))) {
      throw new ApertusError(
        'oci-not-found',
        redact(`${what} was not found on ${reference.registry} (HTTP ${status}).${said}`),
        {
          hint: `Check the name and tag in the source (\`skopeo inspect docker://${name}:TAG\` lists what exists); private images also need credentials.`,
          details: { status },
        },
      );
    }
    if (RETRY_STATUSES.has(status)) {
      throw new RegistryUnavailableError(
        'oci-unavailable',
        redact(`${reference.registry} answered HTTP ${status} for ${what}.${said}`),
        status === 429
          ? `${reference.registry} is rate-limiting this machine (Docker Hub allows few anonymous pulls an hour); log in (APERTUS_REGISTRY_USERNAME and APERTUS_REGISTRY_PASSWORD, or \`podman login\`) or wait, then run again.`
          : 'The registry or a proxy failed; run again later (downloads resume).',
        retryAfterMs(response.headers.get('retry-after')),
      );
    }
    throw new ApertusError(
      'oci-request-failed',
      redact(`${reference.registry} answered HTTP ${status} for ${what}.${said}`),
      {
        kind: 'operation',
        hint: `Check the registry and any proxy in between, then run again.`,
        details: { status },
      },
    );
  };

  const badResponse = (message: string, hint: string): never => {
    throw new ApertusError('oci-bad-response', redact(message), { kind: 'operation', hint });
  };

  const mismatch = (what: string, expected: string, actual: string): never => {
    throw new ApertusError(
      'oci-digest-mismatch',
      redact(
        `${what} from ${reference.registry} does not match its digest: expected ${expected}, got ${actual}.`,
      ),
      {
        kind: 'operation',
        hint: 'The registry, a proxy or the network corrupted the data; nothing was kept. Run again; if it repeats, the registry storage is damaged: tell its operators.',
        details: { expected, actual },
      },
    );
  };

  return {
    baseUrl,
    hasCredentials: credentials !== undefined,
    redact,

    async getManifest(tagOrDigest, signal) {
      const byDigest = tagOrDigest.includes(':');
      const what = `${name}${byDigest ? '@' : ':'}${tagOrDigest}`;
      return withRegistryRetries(async () => {
        const response = await request(`manifests/${tagOrDigest}`, {
          signal,
          headers: { accept: MANIFEST_ACCEPT },
        });
        if (!response.ok) await fail(response, what);
        const bytes = await readLimited(response, MAX_MANIFEST_BYTES, signal).catch((error: unknown) => {
          signal?.throwIfAborted();
          if (error instanceof ApertusError) throw error;
          throw unreachable(new URL(baseUrl), error);
        });
        if (bytes === undefined) {
          return badResponse(
            `The manifest ${what} is larger than ${MAX_MANIFEST_BYTES} bytes.`,
            'That is no image manifest; check the source.',
          );
        }
        const digest = `sha256:${sha256Hex(bytes)}`;
        if (byDigest) {
          if (digest !== tagOrDigest) mismatch(`The manifest ${what}`, tagOrDigest, digest);
        } else {
          // runtime-facts §5.1 step 4: by tag, the body must match Docker-Content-Digest.
          const header = response.headers.get('docker-content-digest')?.trim();
          if (header !== undefined && header !== '') {
            const match = DIGEST.exec(header);
            if (match?.[1] === undefined)
              return badResponse(
                `${what}: Docker-Content-Digest "${header}" is not a digest.`,
                'Check the registry.',
              );
            const actual = `${match[1]}:${createHash(match[1]).update(bytes).digest('hex')}`;
            if (actual !== header) mismatch(`The manifest ${what}`, header, actual);
          }
        }
        const mediaType = manifestMediaType(bytes, response.headers.get('content-type'));
        if (!isIndexMediaType(mediaType) && !isImageManifestMediaType(mediaType)) {
          return badResponse(
            `${what} is of type ${mediaType || '(none)'}, not an image manifest or index.`,
            mediaType.includes('v1+prettyjws') || mediaType.includes('manifest.v1+json')
              ? 'Docker schema 1 images are not supported; push the image again with a current docker or skopeo.'
              : 'Check that the source names a container image (not a Helm chart or other artifact).',
          );
        }
        return { mediaType, digest, bytes };
      }, signal);
    },

    async getBlob(digest, { maxBytes, signal }) {
      const what = `${name}@${digest}`;
      return withRegistryRetries(async () => {
        const response = await request(`blobs/${digest}`, { signal });
        if (!response.ok) await fail(response, `blob ${what}`);
        const bytes = await readLimited(response, maxBytes, signal).catch((error: unknown) => {
          signal?.throwIfAborted();
          if (error instanceof ApertusError) throw error;
          throw unreachable(new URL(baseUrl), error);
        });
        if (bytes === undefined)
          return badResponse(`The blob ${what} is larger than ${maxBytes} bytes.`, 'Check the source.');
        const actual = `sha256:${sha256Hex(bytes)}`;
        if (actual !== digest) mismatch(`The blob ${what}`, digest, actual);
        return bytes;
      }, signal);
    },

    async hasBlob(digest, signal) {
      return withRegistryRetries(async () => {
        const response = await write('HEAD', `blobs/${digest}`, { signal });
        await discard(response);
        if (response.status === 200) return true;
        if (response.status === 404) return false;
        return fail(response, `blob ${name}@${digest}`);
      }, signal);
    },

    async pushBlob(blob, body, signal) {
      const what = `blob ${name}@${blob.digest}`;
      await withRegistryRetries(async () => {
        const opened = await write('POST', 'blobs/uploads/', { signal, headers: { 'content-length': '0' } });
        const location = opened.headers.get('location');
        if (opened.status !== 202 || location === null) {
          if (opened.status === 202) await discard(opened);
          else await fail(opened, `an upload of ${what}`);
          return badResponse(
            `${reference.registry} opened an upload without a Location.`,
            'Check the registry.',
          );
        }
        await discard(opened);
        const url = new URL(location, baseUrl);
        url.searchParams.set('digest', blob.digest);
        const sent = await write('PUT', url, {
          signal,
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
          body,
        });
        if (sent.status !== 201) await fail(sent, what);
        await discard(sent);
        const stored = sent.headers.get('docker-content-digest')?.trim();
        if (stored && stored !== blob.digest) mismatch(`The uploaded ${what}`, blob.digest, stored);
      }, signal);
    },

    async putManifest(tagOrDigest, manifest, signal) {
      const digest = `sha256:${sha256Hex(manifest.bytes)}`;
      const what = `the manifest ${name}${tagOrDigest.includes(':') ? '@' : ':'}${tagOrDigest}`;
      return withRegistryRetries(async () => {
        const response = await write('PUT', `manifests/${tagOrDigest}`, {
          signal,
          headers: { 'content-type': manifest.mediaType, 'content-length': String(manifest.bytes.length) },
          body: () => manifest.bytes,
        });
        if (response.status !== 201 && response.status !== 200) await fail(response, what);
        await discard(response);
        const stored = response.headers.get('docker-content-digest')?.trim();
        if (stored && stored !== digest) mismatch(what, digest, stored);
        return digest;
      }, signal);
    },

    async openBlob(digest, { start = 0, signal } = {}) {
      const headers: Record<string, string> = {};
      // Registries SHOULD support Range (runtime-facts §5.1 step 6); the caller checks for 206.
      if (start > 0) headers.range = `bytes=${start}-`;
      const response = await request(`blobs/${digest}`, { signal, headers });
      if (response.status === 200 || response.status === 206) return response;
      if (response.status === 416) return response;
      return fail(response, `blob ${name}@${digest}`);
    },
  };
}

function basicValue(credentials: RegistryCredentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}

function credentialsHint(registry: string, have: boolean): string {
  return have
    ? `Check the user name and password (or access token) for ${registry}: APERTUS_REGISTRY_USERNAME/APERTUS_REGISTRY_PASSWORD, or the entry \`podman login ${registry}\` / \`docker login ${registry}\` wrote. The account must be allowed to pull the image.`
    : `Log in: set APERTUS_REGISTRY_USERNAME and APERTUS_REGISTRY_PASSWORD (and APERTUS_REGISTRY_HOST=${registry} to use them for this registry only), or run \`podman login ${registry}\`; then run again.`;
}

/** The media type from the body's own `mediaType`, else the Content-Type header. */
function manifestMediaType(bytes: Buffer, contentType: string | null): string {
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; schemaVersion?: unknown };
    if (typeof parsed.mediaType === 'string' && parsed.mediaType !== '') return parsed.mediaType;
    if (parsed.schemaVersion === 1) return 'application/vnd.docker.distribution.manifest.v1+json';
  } catch {
    // Reported below as an unknown type.
  }
  const header = (contentType ?? '').split(';')[0]?.trim() ?? '';
  // An OCI manifest need not carry mediaType; a registry's Content-Type then says what it is.
  return header === 'application/json' ? IMAGE_MEDIA_TYPE.ociManifest : header;
}

/** The body, or undefined when it is longer than `max` bytes. */
async function readLimited(
  response: Response,
  max: number,
  signal?: AbortSignal,
): Promise<Buffer | undefined> {
  const length = Number(response.headers.get('content-length') ?? Number.NaN);
  if (Number.isFinite(length) && length > max) {
    await discard(response);
    return undefined;
  }
  const chunks: Buffer[] = [];
  let total = 0;
  if (response.body === null) return Buffer.alloc(0);
  const reader = response.body.getReader();
  try {
    for (;;) {
      signal?.throwIfAborted();
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > max) {
        await reader.cancel().catch(() => {});
        return undefined;
      }
      chunks.push(Buffer.from(value));
    }
  } finally {
    reader.releaseLock();
  }
  return Buffer.concat(chunks);
}

export async function discard(response: Response): Promise<void> {
  await response.body?.cancel().catch(() => {});
}

async function errorText(response: Response): Promise<string> {
  try {
    const text = boundedErrorText(await response.text());
    return text === '' ? '' : ` The registry said: ${text}`;
  } catch {
    return '';
  }
}

/** Registry error codes (`{"errors":[{"code":"MANIFEST_UNKNOWN",…}]}`) found in an error text. */
function registryErrorCodes(text: string): string[] {
  return [...text.matchAll(/"code"\s*:\s*"([A-Z_]+)"/g)].map((match) => match[1] ?? '');
}
