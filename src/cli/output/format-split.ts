import { basename } from 'node:path';
import type { SplitIndex } from '../../core/layout/split-index.js';
import { formatBytes } from './format.js';

/** The parts of a split bundle, one line each: what goes on which medium. */
export function formatSplitParts(split: SplitIndex, checksums: string): string[] {
  return [
    `  parts      ${split.parts.length} of up to ${split.partSize} bytes (${formatBytes(split.partSize)}); check them without apertus: sha256sum -c ${basename(checksums)}`,
    ...split.parts.map(
      (part) => `    ${part.file}  ${formatBytes(part.size).padStart(10)}  sha256 ${part.sha256}`,
    ),
  ];
}
