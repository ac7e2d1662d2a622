/**
 * A full disk on the host, said the way an operator acts on it: which filesystem, what
 * the step needed and what it had, instead of a shell's exit code.
 */
import { ApertusError } from '../errors.js';
import { formatGB } from '../gpu/units.js';
import { quoteArg } from '../host/shell-quote.js';
import type { ExecResult, Transport } from '../host/transport.js';
import { parseDf } from './probe.js';

/** What GNU, BusyBox and the kernel's strerror print for ENOSPC (and EDQUOT). */
const NO_SPACE = /No space left on device|Disk quota exceeded|ENOSPC/i;

export function isNoSpace(result: Pick<ExecResult, 'stderr' | 'stdout'> | string): boolean {
  return NO_SPACE.test(typeof result === 'string' ? result : `${result.stderr}\n${result.stdout}`);
}

export interface DiskFree {
  mount: string;
  filesystem: string;
  availableBytes: number;
}

/** The filesystem holding `dir` (or its nearest existing ancestor) and its free bytes. */
export async function diskFree(
  transport: Transport,
  dir: string,
  signal?: AbortSignal,
): Promise<DiskFree | undefined> {
  const result = await transport.exec(
    `d=${quoteArg(dir)}; while [ ! -e "$d" ] && [ "$d" != / ]; do d=$(dirname "$d"); done; df -Pk "$d"`,
    { reject: false, ...(signal ? { signal } : {}) },
  );
  return result.exitCode === 0 ? parseDf(result.stdout) : undefined;
}

/**
 * The error for a step that ran out of space under `dir`: "no space left on /var (needs
 * 2.1 GB, has 0 B)". `needs` is what the step was writing, when known.
 */
export async function noSpaceError(
  transport: Transport,
  dir: string,
  what: string,
  needs?: number,
): Promise<ApertusError> {
  const free = await diskFree(transport, dir).catch(() => undefined);
  const where = free ? `${free.mount} (${free.filesystem})` : `the filesystem of ${dir}`;
  const amounts = [
    ...(needs === undefined ? [] : [`needs ${formatGB(needs)}`]),
    ...(free ? [`has ${formatGB(free.availableBytes)}`] : []),
  ];
  return new ApertusError(
    'host-disk-full',
    `No space left on ${where} of ${transport.description}${amounts.length ? ` (${amounts.join(', ')})` : ''}: ${what} failed.`,
    {
      kind: 'operation',
      hint: `Free space on ${free?.mount ?? `the filesystem of ${dir}`} (df -h ${dir}; old releases go with \`apertus rollback\` and removal of releases/NAME/VERSION), then run the command again.`,
      details: { dir, needs: needs ?? null, free: free ?? null },
    },
  );
}
