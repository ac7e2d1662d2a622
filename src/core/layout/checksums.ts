/**
 * SHA256SUMS in the format `sha256sum -c` reads ("<hex>  <path>\n"), so a bundle can
 * be checked with standard tools on a host that has no apertus.
 */
import { confinedRelativePath, isHex } from './names.js';

export interface ChecksumEntry {
  path: string;
  /** 'sha256:<hex>' */
  digest: string;
}

/** One line per file, sorted by path, in text mode ("two spaces"), as sha256sum writes it. */
export function formatChecksums(entries: readonly ChecksumEntry[]): string {
  const sorted = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return sorted.map((entry) => `${entry.digest.slice('sha256:'.length)}  ${entry.path}\n`).join('');
}

export interface ParsedChecksums {
  /** path -> 'sha256:<hex>' */
  digests: Map<string, string>;
  /** Lines that could not be used, each described with its line number. */
  problems: string[];
}

export function parseChecksums(text: string): ParsedChecksums {
  const digests = new Map<string, string>();
  const problems: string[] = [];
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  lines.forEach((line, index) => {
    const number = index + 1;
    // "<hex>  <path>" (text mode) or "<hex> *<path>" (binary mode); both mean the same here.
    const match = /^([0-9a-fA-F]{64}) [ *](.+)$/.exec(line.replace(/\r$/, ''));
    const hex = match?.[1]?.toLowerCase();
    const rawPath = match?.[2];
    if (hex === undefined || rawPath === undefined || !isHex(hex)) {
      problems.push(`line ${number} is not "<sha256>  <path>"`);
      return;
    }
    const path = confinedRelativePath(rawPath);
    if (path === undefined || path !== rawPath) {
      problems.push(`line ${number} names "${rawPath}", which is not a plain relative path`);
      return;
    }
    if (digests.has(path)) {
      problems.push(`line ${number} lists ${path} a second time`);
      return;
    }
    digests.set(path, `sha256:${hex}`);
  });
  return { digests, problems };
}
