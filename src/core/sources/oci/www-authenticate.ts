/**
 * Parses `WWW-Authenticate` (RFC 9110 §11.6.1): one or more challenges, each a scheme
 * followed by comma-separated `name=value` parameters (values are tokens or quoted strings)
 * or by one token68. Fetch joins repeated headers with ", ", which this grammar absorbs.
 * Registries send `Bearer realm="…",service="…",scope="…"` (token auth, runtime-facts §5.1
 * step 2) or `Basic realm="…"` (htpasswd).
 */

export interface AuthChallenge {
  /** Lower-cased: 'bearer', 'basic'. */
  scheme: string;
  /** Parameter names lower-cased, values unquoted. */
  params: Record<string, string>;
  token68?: string;
}

const TOKEN_CHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*/;

export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  const challenges: AuthChallenge[] = [];
  let current: AuthChallenge | undefined;
  let i = 0;
  const skip = (pattern: RegExp) => {
    while (i < header.length && pattern.test(header[i] ?? '')) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < header.length && TOKEN_CHAR.test(header[i] ?? '')) i++;
    return header.slice(start, i);
  };
  const readBare = (): string => {
    const start = i;
    while (i < header.length && header[i] !== ',' && !/\s/.test(header[i] ?? '')) i++;
    return header.slice(start, i);
  };
  const readQuoted = (): string => {
    // Called on the opening quote; a backslash escapes the next character.
    i++;
    let value = '';
    while (i < header.length && header[i] !== '"') {
      if (header[i] === '\\' && i + 1 < header.length) i++;
      value += header[i];
      i++;
    }
    i++;
    return value;
  };

  while (i < header.length) {
    skip(/[\s,]/);
    if (i >= header.length) break;
    const start = i;
    const name = readToken();
    if (name === '') {
      // Not a token: skip to the next comma rather than loop forever on bad input.
      while (i < header.length && header[i] !== ',') i++;
      continue;
    }
    skip(/[ \t]/);
    if (header[i] === '=' && current !== undefined && header[i + 1] !== '=') {
      i++;
      skip(/[ \t]/);
      // Unquoted values should be tokens; servers also send URLs unquoted, so read up to a comma.
      const value = header[i] === '"' ? readQuoted() : readBare();
      current.params[name.toLowerCase()] = value;
      continue;
    }
    if (header[i] === '=') {
      // A parameter before any scheme is malformed; drop it.
      i = start + name.length;
      while (i < header.length && header[i] !== ',') i++;
      continue;
    }
    current = { scheme: name.toLowerCase(), params: {} };
    challenges.push(current);
    // A token68 follows the scheme directly when what comes next is not `name=`.
    const rest = header.slice(i);
    const token68 = TOKEN68.exec(rest)?.[0];
    if (token68 !== undefined) {
      // `realm="x"` starts like a token68 ending in '=', but a value follows it.
      const after = rest.slice(token68.length).trimStart();
      if (after === '' || after.startsWith(',')) {
        current.token68 = token68;
        i += token68.length;
      }
    }
  }
  return challenges;
}

/** The first challenge of a scheme ('bearer', 'basic'), if the header offers it. */
export function findChallenge(challenges: AuthChallenge[], scheme: string): AuthChallenge | undefined {
  return challenges.find((challenge) => challenge.scheme === scheme);
}
