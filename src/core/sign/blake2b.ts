/**
 * BLAKE2b (RFC 7693) with a chosen output length. minisign checksums secret keys with
 * BLAKE2b-256, which is a different function from truncated BLAKE2b-512, and node:crypto
 * only offers the 512-bit variant. Used on a few dozen bytes, so BigInt speed is fine;
 * large inputs go through crypto.createHash('blake2b512').
 */

const MASK = (1n << 64n) - 1n;

const IV = [
  0x6a09e667f3bcc908n,
  0xbb67ae8584caa73bn,
  0x3c6ef372fe94f82bn,
  0xa54ff53a5f1d36f1n,
  0x510e527fade682d1n,
  0x9b05688c2b3e6c1fn,
  0x1f83d9abfb41bd6bn,
  0x5be0cd19137e2179n,
] as const;

const SIGMA: readonly (readonly number[])[] = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
  [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
  [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
  [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
  [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
  [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
  [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
  [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
  [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
  [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
];

const BLOCK = 128;

export function blake2b(input: Uint8Array, outputLength: number): Buffer {
  if (!Number.isInteger(outputLength) || outputLength < 1 || outputLength > 64) {
    throw new RangeError(`BLAKE2b output length ${outputLength} is not 1..64`);
  }
  const h: bigint[] = [...IV];
  h[0] = (h[0] as bigint) ^ 0x01010000n ^ BigInt(outputLength);

  const blocks = Math.max(1, Math.ceil(input.length / BLOCK));
  for (let i = 0; i < blocks; i++) {
    const block = new Uint8Array(BLOCK);
    block.set(input.subarray(i * BLOCK, (i + 1) * BLOCK));
    const last = i === blocks - 1;
    const counter = last ? input.length : (i + 1) * BLOCK;
    compress(h, block, BigInt(counter), last);
  }

  const out = Buffer.alloc(64);
  h.forEach((word, i) => {
    out.writeBigUInt64LE(word, i * 8);
  });
  return out.subarray(0, outputLength);
}

function compress(h: bigint[], block: Uint8Array, counter: bigint, last: boolean): void {
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const m = Array.from({ length: 16 }, (_, i) => view.getBigUint64(i * 8, true));
  const v: bigint[] = [...h, ...IV];
  v[12] = (v[12] as bigint) ^ (counter & MASK);
  v[13] = (v[13] as bigint) ^ (counter >> 64n);
  if (last) v[14] = (v[14] as bigint) ^ MASK;

  const g = (a: number, b: number, c: number, d: number, x: bigint, y: bigint): void => {
    const at = (i: number): bigint => v[i] as bigint;
    v[a] = (at(a) + at(b) + x) & MASK;
    v[d] = rotr(at(d) ^ at(a), 32n);
    v[c] = (at(c) + at(d)) & MASK;
    v[b] = rotr(at(b) ^ at(c), 24n);
    v[a] = (at(a) + at(b) + y) & MASK;
    v[d] = rotr(at(d) ^ at(a), 16n);
    v[c] = (at(c) + at(d)) & MASK;
    v[b] = rotr(at(b) ^ at(c), 63n);
  };

  for (let round = 0; round < 12; round++) {
    const s = SIGMA[round % 10] as readonly number[];
    const word = (i: number): bigint => m[s[i] as number] as bigint;
    g(0, 4, 8, 12, word(0), word(1));
    g(1, 5, 9, 13, word(2), word(3));
    g(2, 6, 10, 14, word(4), word(5));
    g(3, 7, 11, 15, word(6), word(7));
    g(0, 5, 10, 15, word(8), word(9));
    g(1, 6, 11, 12, word(10), word(11));
    g(2, 7, 8, 13, word(12), word(13));
    g(3, 4, 9, 14, word(14), word(15));
  }
  for (let i = 0; i < 8; i++) h[i] = (h[i] as bigint) ^ (v[i] as bigint) ^ (v[i + 8] as bigint);
}

function rotr(word: bigint, bits: bigint): bigint {
  return ((word >> bits) | (word << (64n - bits))) & MASK;
}
