import { ApertusError } from '../errors.js';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import type { HostLayout } from './layout.js';

export type HashTool = 'openssl' | 'sha256sum' | 'shasum';
export type ServiceManager = 'systemd' | 'supervisor';

/** What the installer learned about a host before writing anything to it. */
export interface HostFacts {
  os: string;
  arch: string;
  user: string;
  hashTool: HashTool;
  serviceManager: ServiceManager;
  diskAvailableBytes: number;
  /** Blobs already in the host's store (hex digests). */
  blobs: Set<string>;
  /** Partly uploaded blobs from an interrupted install (hex digest -> bytes on the host). */
  partial: Map<string, number>;
  /** What `current` points at, relative to the root, or null on a fresh host. */
  current: string | null;
}

/** HostFacts as plain JSON (sets and maps become counts), for reports and --json. */
export type HostSummary = Omit<HostFacts, 'blobs' | 'partial'> & {
  blobsPresent: number;
  partialUploads: number;
};

export function summariseHost(facts: HostFacts): HostSummary {
  const { blobs, partial, ...rest } = facts;
  return { ...rest, blobsPresent: blobs.size, partialUploads: partial.size };
}

/** Fastest first: openssl runs at about 1 GB/s, sha256sum at about 200 MB/s (DESIGN.md 7). */
const HASH_TOOLS: readonly HashTool[] = ['openssl', 'sha256sum', 'shasum'];
const REQUIRED_TOOLS = ['sh', 'tar', 'mkdir', 'ln', 'mv', 'df', 'cat', 'wc'];

/** One round trip that reads everything the plan needs, and writes nothing. */
function probeScript(layout: HostLayout): string {
  const q = (p: string) => shellQuote([p]);
  return [
    'echo "os=$(uname -s)"',
    'echo "arch=$(uname -m)"',
    'echo "user=$(id -un)"',
    ...[...REQUIRED_TOOLS, ...HASH_TOOLS].map((t) => `command -v ${t} >/dev/null 2>&1 && echo "tool=${t}"`),
    '[ -d /run/systemd/system ] && echo "systemd=1"',
    // The nearest directory that exists decides both: the store may not exist yet.
    `p=${q(layout.blobDir)}; while [ ! -e "$p" ]; do p=$(dirname "$p"); done`,
    '[ -d "$p" ] && [ -w "$p" ] && echo "writable=1"',
    `df -Pk "$p" 2>/dev/null | awk 'NR==2 {print "disk=" $4 * 1024}'`,
    `[ -L ${q(layout.current)} ] && echo "current=$(readlink ${q(layout.current)})"`,
    `cd ${q(layout.blobDir)} 2>/dev/null && for f in *; do [ -f "$f" ] && echo "blob=$f"; done`,
    `cd ${q(layout.blobDir)} 2>/dev/null && for f in .incoming-*; do [ -f "$f" ] && echo "partial=$f $(wc -c < "$f")"; done`,
    'true',
  ].join('\n');
}

export async function probeHost(transport: Transport, layout: HostLayout): Promise<HostFacts> {
  const result = await transport.exec('sh -s', { stdin: probeScript(layout), reject: false });
  const lines = result.stdout.split('\n');
  const values = (key: string) =>
    lines.filter((line) => line.startsWith(`${key}=`)).map((line) => line.slice(key.length + 1));
  const tools = new Set(values('tool'));

  const missing = REQUIRED_TOOLS.filter((t) => !tools.has(t));
  if (missing.length > 0) {
    throw new ApertusError('host-tools-missing', `${transport.description} lacks ${missing.join(', ')}.`, {
      kind: 'operation',
      hint: 'Install them on the host (they are part of any POSIX base system), then run install again.',
    });
  }
  const hashTool = HASH_TOOLS.find((t) => tools.has(t));
  if (!hashTool) {
    throw new ApertusError('host-hash-tool-missing', `${transport.description} has no SHA-256 tool.`, {
      kind: 'operation',
      hint: 'Install openssl or coreutils (sha256sum) on the host: every uploaded blob is verified there.',
    });
  }
  if (values('writable').length === 0) {
    throw new ApertusError(
      'host-root-not-writable',
      `Cannot write ${layout.root} on ${transport.description}.`,
      {
        kind: 'operation',
        hint: 'Log in as a user who may write there (root by default), or pass --root DIR for a directory you own.',
      },
    );
  }

  const partial = new Map<string, number>();
  for (const entry of values('partial')) {
    const [name, size] = entry.split(' ');
    if (name && size) partial.set(name.replace(/^\.incoming-/, ''), Number(size));
  }
  return {
    os: values('os')[0] ?? 'unknown',
    arch: values('arch')[0] ?? 'unknown',
    user: values('user')[0] ?? 'unknown',
    hashTool,
    serviceManager: values('systemd').length > 0 ? 'systemd' : 'supervisor',
    diskAvailableBytes: Number(values('disk')[0] ?? Number.NaN),
    blobs: new Set(values('blob').filter((name) => /^[0-9a-f]{64}$/.test(name))),
    partial,
    current: values('current')[0] ?? null,
  };
}

/** The command line that prints `<hex> ...` for a file, with the host's fastest tool. */
export function hashCommand(tool: HashTool, file: string): string {
  switch (tool) {
    case 'openssl':
      return shellQuote(['openssl', 'dgst', '-sha256', '-r', file]);
    case 'sha256sum':
      return shellQuote(['sha256sum', file]);
    case 'shasum':
      return shellQuote(['shasum', '-a', '256', file]);
  }
}
