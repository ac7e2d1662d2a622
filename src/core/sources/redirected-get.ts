/**
 * One GET with redirects followed by hand, for the Hub and for registries alike: the
 * credentials go to the origin they belong to and nowhere else (a CDN or storage host a
 * redirect points at gets none), an https source never sends us on to plain http, and
 * bodies arrive as stored (no content encoding), so Range offsets and sizes hold.
 */

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
