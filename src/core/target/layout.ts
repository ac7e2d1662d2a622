import path from 'node:path/posix';

/** The default install root on a target host (DESIGN.md section 3). */
export const DEFAULT_HOST_ROOT = '/var/lib/apertus';

/** Every path apertus writes on a host, in one place. Paths are POSIX and absolute. */
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
  /** Where an image's loadable archive directory is linked together from the store (lowercase base name). */
  image(manifestDigest: string): string;
  current: string;
  /** Held (a directory) while an install runs. */
  lock: string;
  state: string;
  /** Hash-chained record of every install that changed the host. */
  auditLog: string;
  reports: string;
  run: string;
  logs: string;
}

export function hostLayout(root: string): HostLayout {
  if (!path.isAbsolute(root)) throw new Error(`host root must be absolute: ${root}`);
  const blobDir = path.join(root, 'blobs', 'sha256');
  const hex = (digest: string) => digest.replace(/^sha256:/, '');
  return {
    root,
    blobDir,
    blob: (digest) => path.join(blobDir, hex(digest)),
    incoming: (digest) => path.join(blobDir, `.incoming-${hex(digest)}`),
    releases: path.join(root, 'releases'),
    release: (name, version) => path.join(root, 'releases', name, version),
    releaseLinkTarget: (name, version) => path.join('releases', name, version),
    image: (digest) => path.join(root, 'images', `sha256-${hex(digest)}`),
    current: path.join(root, 'current'),
    lock: path.join(root, '.install.lock'),
    state: path.join(root, 'state.json'),
    auditLog: path.join(root, 'audit.log'),
    reports: path.join(root, 'reports'),
    run: path.join(root, 'run'),
    logs: path.join(root, 'logs'),
  };
}
