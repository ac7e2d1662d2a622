/**
 * Removing what apertus put under the install root (uninstall, prune): release
 * directories, image archives and blobs, each named through the layout, so nothing
 * outside the root can be named. One script, one round trip.
 */
import path from 'node:path/posix';
import { ApertusError } from '../errors.js';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import type { HostLayout } from './layout.js';
import { RELEASE_LINK } from './state.js';

export interface Removal {
  /** `releases/NAME/VERSION` link targets. */
  releases: readonly string[];
  /** Image archives by manifest digest. */
  images: readonly string[];
  /** Blobs by digest. */
  blobs: readonly string[];
  /** Every blob in the store and every partial upload (uninstall --purge). */
  wholeStore?: boolean;
}

/** The directory of a `releases/NAME/VERSION` link target, checked again as the layout checks it. */
export function releaseDirOf(layout: HostLayout, linkTarget: string): string {
  if (!RELEASE_LINK.test(linkTarget)) {
    throw new ApertusError('host-path-unsafe', `"${linkTarget}" does not name a release.`, {
      kind: 'operation',
      hint: 'The host state was not written by apertus or was altered; do not use it.',
    });
  }
  const [, name = '', version = ''] = linkTarget.split('/');
  return layout.release(name, version);
}

export function removalScript(layout: HostLayout, removal: Removal): string {
  const q = (value: string) => shellQuote([value]);
  const dirs = removal.releases.map((r) => releaseDirOf(layout, r));
  const names = [...new Set(dirs.map((d) => path.dirname(d)))];
  const lines = ['set -e'];
  for (const dir of dirs) lines.push(`rm -rf ${q(dir)}`);
  // A bundle name with no release left goes too; one with others stays.
  for (const dir of names) lines.push(`rmdir ${q(dir)} 2>/dev/null || true`);
  for (const digest of removal.images) lines.push(`rm -rf ${q(layout.image(digest))}`);
  if (removal.wholeStore) {
    lines.push(
      `if [ -d ${q(layout.blobDir)} ]; then find ${q(layout.blobDir)} -mindepth 1 -maxdepth 1 -type f -exec rm -f {} +; fi`,
    );
  } else {
    for (const digest of removal.blobs) lines.push(`rm -f ${q(layout.blob(digest))}`);
  }
  return `${lines.join('\n')}\n`;
}

export async function removeFromRoot(
  transport: Transport,
  layout: HostLayout,
  removal: Removal,
): Promise<void> {
  // No abort signal: a removal half done is worse than one finished.
  const result = await transport.exec('sh -s', { stdin: removalScript(layout, removal), reject: false });
  if (result.exitCode !== 0) {
    throw new ApertusError(
      'host-remove-failed',
      `Removing releases and blobs under ${layout.root} on ${transport.description} failed: ${result.stderr.trim().slice(-300)}`,
      {
        kind: 'operation',
        hint: 'Check the install root on the host (permissions, mounts), then run the command again: what was removed stays removed.',
      },
    );
  }
}

/** Image archive directories under images/, as manifest digests. */
export async function listImageArchives(
  transport: Transport,
  layout: HostLayout,
  signal?: AbortSignal,
): Promise<string[]> {
  const result = await transport.exec(`ls ${shellQuote([layout.images])} 2>/dev/null; true`, {
    reject: false,
    ...(signal ? { signal } : {}),
  });
  return result.stdout
    .split('\n')
    .map((name) => /^sha256-([0-9a-f]{64})$/.exec(name.trim())?.[1])
    .flatMap((hex) => (hex ? [`sha256:${hex}`] : []));
}
