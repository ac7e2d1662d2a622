/**
 * JSON as the bundle stores it: keys sorted, no whitespace, undefined members dropped.
 * Manifests are content-addressed, so the same data must always give the same bytes.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

export function canonicalJsonBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (typeof value === 'number' && !Number.isFinite(value)) {
    // JSON.stringify would silently write null, which changes the meaning of a size.
    throw new TypeError(`cannot write ${value} as JSON`);
  }
  if (value === null || typeof value !== 'object') return value;
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    const member = (value as Record<string, unknown>)[key];
    if (member !== undefined) sorted[key] = sortKeys(member);
  }
  return sorted;
}
