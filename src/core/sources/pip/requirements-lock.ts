/**
 * The lock a wheels component carries: a pip requirements file in hash-checking mode,
 * one `name==version --hash=sha256:<hex>` line per wheel, so that on the host
 * `pip install --no-index --require-hashes -r requirements.lock` installs exactly the
 * bundled files and nothing else. Written deterministically (sorted, no timestamps): the
 * same wheels give the same lock and so the same component revision.
 */

export interface LockedWheel {
  /** Distribution name as in the wheel file name. */
  distribution: string;
  version: string;
  /** 'sha256:<hex>'. */
  digest: string;
}

export interface LockHeader {
  python: string;
  platforms: string[];
  /** Redacted: never carries credentials. */
  index: string;
}

export function formatRequirementsLock(wheels: LockedWheel[], header: LockHeader): string {
  const lines = [
    '# apertus pip lock: install with',
    '#   pip install --no-index --find-links wheels --require-hashes -r requirements.lock',
    `# python ${header.python}; platforms ${header.platforms.join(' ')}`,
    `# index ${header.index}`,
    ...[...wheels]
      .sort((a, b) => compare(a.distribution.toLowerCase(), b.distribution.toLowerCase()))
      .map((w) => `${w.distribution}==${w.version} --hash=sha256:${w.digest.replace(/^sha256:/, '')}`),
  ];
  return `${lines.join('\n')}\n`;
}

/** Whether a requirements file pins hashes (pip's hash-checking mode), ignoring comments. */
export function requirementsPinHashes(text: string): boolean {
  return logicalLines(text).some((line) => /(^|\s)--hash[=\s]/.test(line));
}

/**
 * Options in a requirements file that would send pip to another index or location than
 * the one the recipe names (and carry credentials past the redaction).
 */
export function requirementsIndexOptions(text: string): string[] {
  const found = new Set<string>();
  for (const line of logicalLines(text)) {
    const match = /(^|\s)(-i|--index-url|--extra-index-url|-f|--find-links|--trusted-host)([=\s]|$)/.exec(
      line,
    );
    if (match?.[2]) found.add(match[2]);
  }
  return [...found];
}

/** Lines with continuations joined and comments removed, as pip reads them. */
function logicalLines(text: string): string[] {
  return text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((line) => line.replace(/(^|\s)#.*$/, '').trim())
    .filter((line) => line.length > 0);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
