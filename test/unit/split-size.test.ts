import { describe, expect, it } from 'vitest';
import {
  FAT32_MAX_FILE_SIZE,
  MIN_PART_SIZE,
  parseByteSize,
  parsePartSize,
} from '../../src/core/bundle/part-size.js';
import { ApertusError } from '../../src/core/errors.js';

function failure(run: () => unknown): ApertusError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ApertusError);
    return error as ApertusError;
  }
  throw new Error('expected an ApertusError');
}

describe('parseByteSize', () => {
  it('reads plain bytes, decimal and binary units, any case, with fractions', () => {
    expect(parseByteSize('1048576')).toBe(1048576);
    expect(parseByteSize('512B')).toBe(512);
    expect(parseByteSize('25GB')).toBe(25_000_000_000);
    expect(parseByteSize('700MB')).toBe(700_000_000);
    expect(parseByteSize('4GiB')).toBe(4 * 1024 ** 3);
    expect(parseByteSize('1.5GiB')).toBe(1.5 * 1024 ** 3);
    expect(parseByteSize('4.7GB')).toBe(4_700_000_000);
    expect(parseByteSize('2kb')).toBe(2000);
    expect(parseByteSize('2 KiB')).toBe(2048);
    expect(parseByteSize(' 3mib ')).toBe(3 * 1024 ** 2);
    expect(parseByteSize('1TB')).toBe(1e12);
    expect(parseByteSize('1.1KiB')).toBe(1126); // rounded down to whole bytes
  });

  it('refuses junk with what to write instead', () => {
    for (const junk of ['', 'abc', '-1MB', '1e9', '0x10', '4 GiBs', '.5GB', '1,5GB', '4GiB4']) {
      const error = failure(() => parseByteSize(junk));
      expect(error.code).toBe('bad-size');
      expect(error.hint).toContain('4GiB');
    }
    expect(failure(() => parseByteSize('9PB')).message).toContain('unknown unit "PB"');
    expect(failure(() => parseByteSize('99999999TiB')).message).toContain('too large');
  });

  it('refuses a bare K/M/G/T as ambiguous and names both readings', () => {
    const error = failure(() => parseByteSize('4G'));
    expect(error.message).toContain('ambiguous');
    expect(error.hint).toBe('Write 4GiB (powers of 1024) or 4GB (powers of 1000).');
    expect(failure(() => parseByteSize('8k')).hint).toBe(
      'Write 8KiB (powers of 1024) or 8kB (powers of 1000).',
    );
  });
});

describe('parsePartSize', () => {
  it('needs at least 1 MiB, and says so', () => {
    expect(parsePartSize('1MiB')).toBe(MIN_PART_SIZE);
    const error = failure(() => parsePartSize('1MB'));
    expect(error.message).toBe(
      'part size "1MB" is 1000000 bytes; parts must be at least 1 MiB (1048576 bytes)',
    );
    expect(error.hint).toContain('--split 4GiB');
    expect(failure(() => parsePartSize('4')).code).toBe('bad-size');
  });

  it('makes 4 GiB parts fit FAT32, whose files end one byte short of 4 GiB', () => {
    expect(parsePartSize('4GiB')).toBe(FAT32_MAX_FILE_SIZE);
    expect(parsePartSize('4096MiB')).toBe(4 * 1024 ** 3 - 1);
    expect(parsePartSize('25GB')).toBe(25e9);
    expect(parsePartSize('4.7GB')).toBe(4.7e9);
  });
});
