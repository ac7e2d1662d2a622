/** Vectors for vector-store tests: deterministic, so a failure repeats, and the exact cosine to judge them by. */

/** Pseudo-random vectors in [-1, 1] (xorshift) of dimension `dim`. */
export function seededVectors(count: number, seed: number, dim: number): Float32Array[] {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return ((x >>> 0) / 0xffffffff) * 2 - 1;
  };
  return Array.from({ length: count }, () => Float32Array.from({ length: dim }, next));
}

export function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += (a[i] as number) * (b[i] as number);
    na += (a[i] as number) ** 2;
    nb += (b[i] as number) ** 2;
  }
  return dot / Math.sqrt(na * nb);
}

/**
 * The exact top-k of `rows` for `query` by cosine, as "doc-<d>#<c>" keys for rows stored
 * `perDocument` to a document in order, with their scores: what a store's search must return.
 */
export function exactTopK(
  rows: Float32Array[],
  query: Float32Array,
  k: number,
  perDocument: number,
): Array<{ key: string; score: number }> {
  return rows
    .map((v, i) => ({
      key: `doc-${Math.floor(i / perDocument)}#${i % perDocument}`,
      score: cosine(v, query),
    }))
    .sort((a, b) => b.score - a.score)
    .slice(0, k);
}
