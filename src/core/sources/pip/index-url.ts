/**
 * Package index URLs may carry credentials (`https://user:token@host/simple/`). They are
 * given to pip through its environment only; everything apertus records or reports (the
 * bundle, provenance, the lock file, logs, errors) uses the redacted form.
 */
import { ApertusError } from '../../errors.js';

export const DEFAULT_INDEX_URL = 'https://pypi.org/simple/';

/** The index URL without user info; throws for a URL that is not http(s). */
export function redactIndexUrl(indexUrl: string): string {
  const url = parseIndexUrl(indexUrl);
  url.username = '';
  url.password = '';
  return url.toString();
}

/** The secrets an index URL holds (user name and password, raw and percent-decoded), for scrubbing text. */
export function indexUrlSecrets(indexUrl: string): string[] {
  const url = parseIndexUrl(indexUrl);
  const secrets = new Set<string>();
  for (const value of [url.username, url.password]) {
    if (value.length === 0) continue;
    secrets.add(value);
    secrets.add(safeDecode(value));
  }
  return [...secrets].filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
}

/** `text` with every secret of the index URL replaced by '****'. */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) out = out.split(secret).join('****');
  return out;
}

function parseIndexUrl(indexUrl: string): URL {
  let url: URL;
  try {
    url = new URL(indexUrl);
  } catch {
    throw new ApertusError('pip-index-url-invalid', 'The package index URL is not a URL.', {
      hint: 'Set indexUrl in the recipe (or PIP_INDEX_URL) to the index\'s "simple" URL, e.g. https://pypi.org/simple/.',
    });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ApertusError(
      'pip-index-url-invalid',
      `The package index URL uses ${url.protocol}, not http(s).`,
      {
        hint: 'Point indexUrl (or PIP_INDEX_URL) at an http(s) "simple" index.',
      },
    );
  }
  return url;
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
