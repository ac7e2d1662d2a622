/**
 * What a host must offer before a command changes it, judged from the probe: the POSIX
 * tools install uses, a SHA-256 tool, a root the login user may write, and a root nobody
 * else can steer (root-safety.ts). Refusals say what to fix; nothing has been written.
 */
import { ApertusError } from '../errors.js';
import { shellQuote } from '../host/shell-quote.js';
import type { HostLayout } from './layout.js';
import { HASH_TOOLS, type HashTool, type HostProbe, REQUIRED_TOOLS } from './probe.js';
import { judgeRoot, type RootProblem } from './root-safety.js';

export type { HashTool } from './probe.js';
export type ServiceManager = 'systemd' | 'supervisor';

/** How apertus works on this host: its fastest SHA-256 tool and its service manager. */
export interface HostTools {
  hashTool: HashTool;
  serviceManager: ServiceManager;
}

export function serviceManagerOf(probe: HostProbe): ServiceManager {
  return probe.systemd ? 'systemd' : 'supervisor';
}

/** Throws when the host cannot take a change: a missing tool, an unwritable or unsafe root. */
export function assertHostUsable(probe: HostProbe, layout: HostLayout, host: string): HostTools {
  const missing = REQUIRED_TOOLS.filter((t) => !probe.hostTools.has(t));
  if (missing.length > 0) {
    throw new ApertusError('host-tools-missing', `${host} lacks ${missing.join(', ')}.`, {
      kind: 'operation',
      hint: 'Install them on the host (they are part of any POSIX base system), then run the command again.',
    });
  }
  // Fastest first: openssl runs at about 1 GB/s, sha256sum at about 200 MB/s (DESIGN.md 7).
  const hashTool = HASH_TOOLS.find((t) => probe.hostTools.has(t));
  if (!hashTool) {
    throw new ApertusError('host-hash-tool-missing', `${host} has no SHA-256 tool.`, {
      kind: 'operation',
      hint: 'Install openssl or coreutils (sha256sum) on the host: every uploaded blob is verified there.',
    });
  }
  if (!probe.root.writable) {
    throw new ApertusError('host-root-not-writable', `Cannot write ${layout.root} on ${host}.`, {
      kind: 'operation',
      hint: 'Log in as a user who may write there (root by default), or pass --root DIR for a directory you own.',
    });
  }
  assertRootSafe(judgeRoot(probe.root.entries, layout, probe.uid), layout, host);
  return { hashTool, serviceManager: serviceManagerOf(probe) };
}

export function assertRootSafe(problems: readonly RootProblem[], layout: HostLayout, host: string): void {
  if (problems.length === 0) return;
  const lines = problems.map((p) => `  ${p.path} ${p.problem}\n    fix: ${p.fix}`);
  throw new ApertusError(
    'host-root-unsafe',
    `${layout.root} on ${host} is not safe to install into; nothing was changed:\n${lines.join('\n')}`,
    {
      kind: 'operation',
      hint: 'Run the fixes above as root on the host (after checking who made these entries and why), then run the command again.',
      details: { problems },
    },
  );
}

/** The command line that prints `<hex> ...` for a file (or, without one, for stdin), with the host's fastest tool. */
export function hashCommand(tool: HashTool, file?: string): string {
  const files = file === undefined ? [] : [file];
  switch (tool) {
    case 'openssl':
      return shellQuote(['openssl', 'dgst', '-sha256', '-r', ...files]);
    case 'sha256sum':
      return shellQuote(['sha256sum', ...files]);
    case 'shasum':
      return shellQuote(['shasum', '-a', '256', ...files]);
  }
}
