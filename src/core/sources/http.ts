/**
 * HTTP for the sources that fetch over the network (the Hub and OCI registries): one
 * GET that follows redirects by hand, and the rules both share for retries and for
 * turning a failure into words.
 */

export const MAX_REDIRECTS = 10;
/** Statuses worth another try: the service, not the request, failed. */
export const RETRY_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);
export const API_ATTEMPTS = 3;
const MAX_ERROR_TEXT = 300;

/** A `Retry-After` header (seconds or an HTTP date) in milliseconds. */
export function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** A server's explanation on one line, cut to a length an error message can carry. */
export function boundedErrorText(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > MAX_ERROR_TEXT ? `${line.slice(0, MAX_ERROR_TEXT)}...` : line;
}

/** fetch wraps socket errors as `TypeError: fetch failed` with the real reason in `cause`. */
export function describeNetworkError(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    parts.push(typeof code === 'string' ? `${current.message} (${code})` : current.message);
    current = current.cause;
  }
  return parts.length > 0
    ? parts.filter((part, index) => part !== parts[index - 1]).join(': ')
    : String(error);
}

export interface RedirectedGetOptions {
  /** The origin the credentials belong to. */
  origin: string;
  /** The Authorization header value for `origin`, if any. */
  authorization?: string | undefined;
  userAgent: string;
  headers?: Record<string, string> | undefined;
  signal?: AbortSignal | undefined;
  maxRedirects: number;
  /** The caller's errors, with its codes and hints. */
  unreachable: (url: URL, error: unknown) => Error;
  tooManyRedirects: () => Error;
  downgraded: (to: URL) => Error;
  /** Each response, redirects included, with the URL it came from. */
  onResponse?: ((url: URL, response: Response) => void) | undefined;
}

/**
 * One GET with redirects followed by hand: the credentials go to the origin they belong
 * to and nowhere else (a CDN or storage host a redirect points at gets none), an https
 * source never sends us on to plain http, and bodies arrive as stored (no content
 * encoding), so Range offsets and sizes hold.
 */
export async function getFollowingRedirects(
  url: string,
  options: RedirectedGetOptions,
): Promise<{ response: Response; url: URL }> {
  let current = new URL(url);
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = {
      'user-agent': options.userAgent,
      'accept-encoding': 'identity',
      ...options.headers,
    };
    // Comparing whole origins (scheme, host, port) also keeps credentials off an http downgrade.
    if (options.authorization !== undefined && current.origin === options.origin) {
      headers.authorization = options.authorization;
    }
    let response: Response;
    try {
      response = await fetch(current, {
        method: 'GET',
        headers,
        redirect: 'manual',
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (error) {
      options.signal?.throwIfAborted();
      throw options.unreachable(current, error);
    }
    options.onResponse?.(current, response);
    const location = response.headers.get('location');
    if (response.status < 300 || response.status >= 400 || location === null)
      return { response, url: current };
    await response.body?.cancel().catch(() => {});
    if (hop >= options.maxRedirects) throw options.tooManyRedirects();
    const next = new URL(location, current);
    if (current.protocol === 'https:' && next.protocol !== 'https:') throw options.downgraded(next);
    current = next;
  }
}
