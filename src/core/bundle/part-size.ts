/**
 * Sizes as people write them for media: `4GiB`, `25GB`, `700MB`, `1.5GiB`, `1048576`.
 * Decimal units (kB, MB, GB, TB) count powers of 1000, as disc and stick vendors do;
 * binary units (KiB, MiB, GiB, TiB) powers of 1024. Units are case-insensitive.
 * A bare `4G` or `4M` is refused: coreutils reads it as binary, vendors as decimal.
 */
import { ApertusError } from '../errors.js';

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
/** Smaller parts only multiply files on the medium; a typo like `--split 4` is caught here. */
export const MIN_PART_SIZE = MIB;
/** FAT32 holds files of at most 4 GiB minus one byte. */
export const FAT32_MAX_FILE_SIZE = 4 * GIB - 1;

const UNITS: Record<string, bigint> = {
  '': 1n,
  b: 1n,
  kb: 1000n,
  mb: 1000n ** 2n,
  gb: 1000n ** 3n,
  tb: 1000n ** 4n,
  kib: 1024n,
  mib: 1024n ** 2n,
  gib: 1024n ** 3n,
  tib: 1024n ** 4n,
};

const EXAMPLES = 'Write a number of bytes, or one with a unit: 4GiB, 25GB, 700MB, 1.5GiB, 1048576.';

/** A byte count from text; fractions are rounded down to whole bytes. */
export function parseByteSize(text: string, what = 'size'): number {
  const match = /^\s*([0-9]+)(?:\.([0-9]+))?\s*([A-Za-z]*)\s*$/.exec(text);
  const whole = match?.[1];
  const unitText = match?.[3] ?? '';
  if (match === null || whole === undefined) {
    throw new ApertusError('bad-size', `${what} "${text}" is not a size`, { hint: EXAMPLES });
  }
  const unit = UNITS[unitText.toLowerCase()];
  if (unit === undefined) {
    const letter = unitText.toUpperCase();
    const ambiguous = /^[KMGT]$/.test(letter);
    throw new ApertusError(
      'bad-size',
      ambiguous
        ? `${what} "${text}" is ambiguous: "${unitText}" means ${letter}iB to some tools and ${letter === 'K' ? 'kB' : `${letter}B`} to others`
        : `${what} "${text}" has an unknown unit "${unitText}"`,
      {
        hint: ambiguous
          ? `Write ${whole}${letter === 'K' ? 'Ki' : `${letter}i`}B (powers of 1024) or ${whole}${letter === 'K' ? 'k' : letter}B (powers of 1000).`
          : `Units: B, kB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB, TiB (powers of 1024). ${EXAMPLES}`,
      },
    );
  }
  const fraction = match[2] ?? '';
  const scale = 10n ** BigInt(fraction.length);
  const bytes = ((BigInt(whole) * scale + BigInt(fraction === '' ? '0' : fraction)) * unit) / scale;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ApertusError('bad-size', `${what} "${text}" is too large`, { hint: EXAMPLES });
  }
  return Number(bytes);
}

/**
 * The size of each part of a split bundle, from `--split` / `--size`: at least
 * MIN_PART_SIZE. Exactly 4 GiB gives parts one byte smaller, because FAT32, the
 * usual reason to ask for 4 GiB, cannot hold a file of 4 GiB.
 */
export function parsePartSize(text: string): number {
  const bytes = parseByteSize(text, 'part size');
  if (bytes < MIN_PART_SIZE) {
    throw new ApertusError(
      'bad-size',
      `part size "${text}" is ${bytes} bytes; parts must be at least 1 MiB (${MIN_PART_SIZE} bytes)`,
      { hint: 'Pass the size of the medium, e.g. --split 4GiB for FAT32 sticks or --split 25GB for BD-R.' },
    );
  }
  return bytes === 4 * GIB ? FAT32_MAX_FILE_SIZE : bytes;
}
