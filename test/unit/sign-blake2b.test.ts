import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { blake2b } from '../../src/core/sign/blake2b.js';

describe('blake2b', () => {
  it('matches the RFC 7693 and libsodium vectors for BLAKE2b-256', () => {
    expect(blake2b(Buffer.from(''), 32).toString('hex')).toBe(
      '0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8',
    );
    expect(blake2b(Buffer.from('abc'), 32).toString('hex')).toBe(
      'bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319',
    );
  });

  it('agrees with node:crypto blake2b512 at block boundaries', () => {
    for (const length of [0, 1, 127, 128, 129, 255, 256, 257, 1000]) {
      const input = randomBytes(length);
      expect(blake2b(input, 64).toString('hex'), `length ${length}`).toBe(
        createHash('blake2b512').update(input).digest('hex'),
      );
    }
  });
});
