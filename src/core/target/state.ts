import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import type { HostLayout } from './layout.js';

/**
 * `<root>/state.json` as install (and rollback) write it: the release that went live, its
 * report, and the release it replaced. Field names are read back by status and rollback.
 */
export interface HostState {
  current: {
    name: string;
    version: string;
    manifestDigest: string;
    /** The release path relative to the root, as the `current` link holds it. */
    release: string;
    report: string;
  } | null;
  previous: string | null;
  updatedAt: string | null;
}

/** Reads state.json; a host without one (nothing ever went live) reads as empty. */
export async function readHostState(
  transport: Transport,
  layout: HostLayout,
  signal?: AbortSignal,
): Promise<HostState> {
  const result = await transport.exec(shellQuote(['cat', layout.state]), { reject: false, signal });
  if (result.exitCode !== 0) return { current: null, previous: null, updatedAt: null };
  try {
    const value = JSON.parse(result.stdout) as Partial<HostState>;
    return {
      current: value.current ?? null,
      previous: value.previous ?? null,
      updatedAt: value.updatedAt ?? null,
    };
  } catch {
    return { current: null, previous: null, updatedAt: null };
  }
}

/** Writes state.json aside and renames it over, so a reader never sees half a file. */
export function writeHostStateScript(layout: HostLayout, state: HostState): string[] {
  const q = (value: string) => shellQuote([value]);
  return [
    `printf '%s\\n' ${q(JSON.stringify(state, null, 2))} > ${q(`${layout.state}.new`)}`,
    `mv -f ${q(`${layout.state}.new`)} ${q(layout.state)}`,
  ];
}

/** Where `current` points, relative to the root; null when there is no link. */
export async function readCurrentLink(
  transport: Transport,
  layout: HostLayout,
  signal?: AbortSignal,
): Promise<string | null> {
  const link = await transport.exec(shellQuote(['readlink', layout.current]), { reject: false, signal });
  const target = link.stdout.trim();
  return link.exitCode === 0 && target !== '' ? target : null;
}
