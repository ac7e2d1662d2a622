/**
 * Every path apertus reads or writes on a host, in one place (DESIGN.md section 3). Paths
 * are POSIX and absolute. Nothing else names a host path: the root comes in validated
 * (`parseHostRoot`), and every name that becomes a path segment is checked again here,
 * as a last line behind the bundle schema.
 */
import path from 'node:path/posix';
import { ApertusError } from '../errors.js';

/** The default install root on a target host. */
export const DEFAULT_HOST_ROOT = '/var/lib/apertus';

/** What kind of entry a path of the layout must be; anything else in its place is refused. */
export type EntryKind = 'dir' | 'file' | 'link';

export interface HostLayout {
  root: string;
  blobDir: string;
  blob(digest: string): string;
  /** Where a blob is uploaded before it is verified on the host and moved into the store. */
  incoming(digest: string): string;
  releases: string;
  release(name: string, version: string): string;
  /** Release path relative to the root: what the `current` link points at. */
  releaseLinkTarget(name: string, version: string): string;
  /** Where an image's loadable archive directory is linked together from the store. */
  image(manifestDigest: string): string;
  /** The directory of those archives. */
  images: string;
  current: string;
  /** A directory while a host command holds the host (target/lock.ts). */
  lock: string;
  state: string;
  /** Hash-chained, signed record of every command that changed the host. */
  auditLog: string;
  reports: string;
  /** `reports/<seq>-<kind>-<UTC stamp>.json`: named by the audit record, never by bundle metadata. */
  report(seq: number, kind: ReportKind, at: Date): string;
  run: string;
  logs: string;
  /** Data that outlives releases, one directory per service (the RAG collection, Qdrant's storage). */
  data: string;
  dataDir(service: string): string;
  /** The minisign public keys this host trusts to sign bundles: `<key id>.pub`. */
  trust: string;
  trustedKey(keyId: string): string;
  /** The host's own key pair, made at the first install: signs audit records and checkpoints. */
  keys: string;
  hostSecretKey: string;
  hostPublicKey: string;
  /** Paths whose kind is fixed, for the root-safety check; globbed ones with a `*`. */
  expected: ReadonlyArray<{ path: string; kind: EntryKind }>;
}

export type ReportKind = 'install' | 'rollback' | 'trust' | 'api-key' | 'uninstall' | 'prune' | 'eval';

export function hostLayout(root: string): HostLayout {
  const valid = parseHostRoot(root);
  const blobDir = path.join(valid, 'blobs', 'sha256');
  const hex = (digest: string) => {
    const value = digest.replace(/^sha256:/, '');
    if (!/^[0-9a-f]{64}$/.test(value)) throw unsafe('digest', digest);
    return value;
  };
  const release = (name: string, version: string) =>
    path.join('releases', segment('bundle name', name), segment('bundle version', version));
  const trust = path.join(valid, 'trust');
  const keys = path.join(valid, 'keys');
  const data = path.join(valid, 'data');
  const layout: Omit<HostLayout, 'expected'> = {
    root: valid,
    blobDir,
    blob: (digest) => path.join(blobDir, hex(digest)),
    incoming: (digest) => path.join(blobDir, `.incoming-${hex(digest)}`),
    releases: path.join(valid, 'releases'),
    release: (name, version) => path.join(valid, release(name, version)),
    releaseLinkTarget: release,
    image: (digest) => path.join(valid, 'images', `sha256-${hex(digest)}`),
    images: path.join(valid, 'images'),
    current: path.join(valid, 'current'),
    lock: path.join(valid, '.install.lock'),
    state: path.join(valid, 'state.json'),
    auditLog: path.join(valid, 'audit.log'),
    reports: path.join(valid, 'reports'),
    report: (seq, kind, at) => {
      if (!Number.isSafeInteger(seq) || seq < 1) throw unsafe('audit seq', String(seq));
      const stamp = at
        .toISOString()
        .replaceAll(/[-:]/g, '')
        .replace(/\.\d+Z$/, 'Z');
      return path.join(valid, 'reports', `${String(seq).padStart(6, '0')}-${kind}-${stamp}.json`);
    },
    run: path.join(valid, 'run'),
    logs: path.join(valid, 'logs'),
    data,
    dataDir: (service) => path.join(data, segment('service name', service)),
    trust,
    trustedKey: (keyId) => {
      if (!/^[0-9A-F]{16}$/.test(keyId)) throw unsafe('key id', keyId);
      return path.join(trust, `${keyId}.pub`);
    },
    keys,
    hostSecretKey: path.join(keys, 'host.key'),
    hostPublicKey: path.join(keys, 'host.pub'),
  };
  const dirs = [
    valid,
    path.join(valid, 'blobs'),
    blobDir,
    layout.releases,
    path.join(layout.releases, '*'),
    path.join(layout.releases, '*', '*'),
    path.join(valid, 'images'),
    layout.reports,
    layout.run,
    layout.logs,
    data,
    trust,
    keys,
    layout.lock,
  ];
  const files = [
    layout.state,
    layout.auditLog,
    layout.hostSecretKey,
    layout.hostPublicKey,
    path.join(trust, '*'),
    path.join(layout.reports, '*'),
    path.join(blobDir, '*'),
  ];
  return {
    ...layout,
    expected: [
      ...dirs.map((p) => ({ path: p, kind: 'dir' as const })),
      ...files.map((p) => ({ path: p, kind: 'file' as const })),
      { path: layout.current, kind: 'link' },
    ],
  };
}

/**
 * A validated install root, or a usage error: absolute, already normal (no `.`, `..` or
 * doubled slashes), printable, and not `/` itself, since every command writes and
 * removes directories under it.
 */
export function parseHostRoot(value: string): string {
  const problem = rootProblem(value);
  if (problem !== undefined) {
    throw new ApertusError('root-invalid', `The install root "${printable(value)}" ${problem}.`, {
      hint: `Pass --root an absolute directory such as ${DEFAULT_HOST_ROOT}, written out in full.`,
    });
  }
  return value;
}

function rootProblem(value: string): string | undefined {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\x00-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]/.test(value))
    return 'holds control or direction characters';
  if (!path.isAbsolute(value)) return 'is not an absolute path';
  // The probe matches paths under the root with find -path: no pattern characters in it.
  if (/[*?[\]\\]/.test(value)) return 'holds a pattern character (* ? [ ] \\)';
  if (value === '/') return 'is the filesystem root';
  if (path.normalize(value) !== value || value.endsWith('/'))
    return `is not written in normal form (${path.normalize(value).replace(/\/$/, '')})`;
  if (value.length > 1024) return 'is longer than 1024 characters';
  return undefined;
}

/** A name that becomes one path segment: the bundle schema's rule, checked again where it is used. */
function segment(what: string, value: string): string {
  if (!/^[0-9A-Za-z][0-9A-Za-z.+_-]{0,127}$/.test(value) || value === '.' || value === '..')
    throw unsafe(what, value);
  return value;
}

function unsafe(what: string, value: string): ApertusError {
  return new ApertusError(
    'host-path-unsafe',
    `The ${what} "${printable(value)}" cannot name a path on the host.`,
    {
      kind: 'operation',
      hint: 'The bundle or the host state was not written by apertus or was altered; do not use it.',
    },
  );
}

function printable(value: string): string {
  return JSON.stringify(value).slice(1, -1);
}
