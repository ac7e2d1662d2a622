import path from 'node:path/posix';
import { ApertusError } from '../errors.js';
import type { EvalSpec } from '../eval/eval-set.js';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import type { ServiceSpec } from '../layout/types.js';
import type { InstallPlan } from '../operations/install-plan.js';
import { isNoSpace, noSpaceError } from './disk.js';
import type { HostLayout } from './layout.js';
import { type HashTool, hashCommand } from './preflight.js';
import { writeFileScript } from './safe-write.js';

/** Written into every release; a release without it is incomplete and is rebuilt. */
export const RELEASE_FILE = 'release.json';

/** What a release is and runs; rollback starts a previous release's services from it. */
export interface ReleaseRecord {
  name: string;
  version: string;
  manifestDigest: string;
  stagedAt: string;
  services: ServiceSpec[];
  /**
   * Every blob of the bundle it came from (manifests, configs, layers, and the ones a delta
   * left out because the host held them): what prune keeps in the store while this release
   * is kept. Absent in releases staged before it was recorded.
   */
  blobs?: string[];
  /** The bundle's evaluation sets, for `apertus eval` on the host; absent when it has none. */
  eval?: EvalSpec;
}

/** Exit status of the stage script when a blob in the store does not hash to its name. */
const CORRUPT_EXIT = 87;

export type StageOutcome =
  | { created: boolean; corrupt: [] }
  /** Blobs whose content does not match their name: nothing was staged; upload them again. */
  | { created: false; corrupt: Array<{ digest: string; actual: string }> };

/**
 * Materialises the release from the host's blob store: hard links for file layers (no
 * data is copied), extraction for tar layers, all in a staging directory that is renamed
 * into place at the end. A complete release of the same bundle is kept as it is. Before a
 * new release links a blob it did not upload in this run, the blob's hash is checked:
 * a store another process could have altered is never linked into a release unchecked.
 */
export async function stageRelease(
  transport: Transport,
  layout: HostLayout,
  plan: InstallPlan,
  services: ServiceSpec[],
  options: {
    hashTool: HashTool;
    check: readonly string[];
    /** Every blob of the bundle, recorded in release.json for prune. */
    blobs: readonly string[];
    eval?: EvalSpec | undefined;
    signal?: AbortSignal | undefined;
  },
): Promise<StageOutcome> {
  const { signal } = options;
  const q = (value: string) => shellQuote([value]);
  const { dir } = plan.release;
  const staging = path.join(path.dirname(dir), `.staging-${path.basename(dir)}`);
  const record: ReleaseRecord = {
    name: plan.bundle.name,
    version: plan.bundle.version,
    manifestDigest: plan.bundle.manifestDigest,
    stagedAt: new Date().toISOString(),
    services,
    blobs: [...options.blobs].sort(),
    ...(options.eval ? { eval: options.eval } : {}),
  };
  const lines = [
    'set -eu',
    `if [ -f ${q(path.join(dir, RELEASE_FILE))} ] && grep -q ${q(plan.bundle.manifestDigest)} ${q(path.join(dir, RELEASE_FILE))}; then echo kept; exit 0; fi`,
    // A release dir without its record (or of another bundle) is a leftover: it is rebuilt.
    `if [ -e ${q(dir)} ] && [ ${q(plan.release.linkTarget)} = "$(readlink ${q(layout.current)} 2>/dev/null)" ]; then echo "release dir in use but incomplete" >&2; exit 3; fi`,
    // Each blob this release uses that this run did not upload: its hash, before anything is made.
    'corrupt=0',
    ...options.check.map((digest) => {
      const hex = digest.replace(/^sha256:/, '');
      return `actual=$(${hashCommand(options.hashTool, layout.blob(digest))} | cut -d' ' -f1); [ "$actual" = ${q(hex)} ] || { echo "corrupt ${hex} $actual"; corrupt=1; }`;
    }),
    `[ "$corrupt" = 0 ] || exit ${CORRUPT_EXIT}`,
    `rm -rf ${q(staging)} ${q(dir)}`,
    `mkdir -p ${q(staging)}`,
  ];
  for (const step of plan.materialise) {
    if (step.type === 'link') {
      const blob = layout.blob(step.digest);
      const to = path.join(staging, path.relative(dir, step.to));
      lines.push(`mkdir -p ${q(path.dirname(to))}`);
      if (step.executable) lines.push(`chmod 0555 ${q(blob)}`);
      lines.push(`ln ${q(blob)} ${q(to)}`);
    } else if (step.type === 'write') {
      const to = path.join(staging, path.relative(dir, step.to));
      lines.push(`mkdir -p ${q(path.dirname(to))}`, writeFileScript(to, step.content, '0644'));
    } else {
      const blob = layout.blob(step.digest);
      const into = path.join(staging, path.relative(dir, step.into));
      // --no-same-owner: files belong to the installing user, whatever the tar says.
      lines.push(`mkdir -p ${q(into)}`, `tar -xf ${q(blob)} -C ${q(into)} --no-same-owner`);
    }
  }
  lines.push(
    writeFileScript(path.join(staging, RELEASE_FILE), `${JSON.stringify(record)}\n`, '0644'),
    `mv ${q(staging)} ${q(dir)}`,
    'echo created',
  );
  const result = await transport.exec('sh -s', {
    stdin: `${lines.join('\n')}\n`,
    reject: false,
    ...(signal ? { signal } : {}),
  });
  if (result.exitCode === CORRUPT_EXIT) {
    const corrupt = result.stdout
      .split('\n')
      .map((line) => /^corrupt ([0-9a-f]{64}) (\S*)$/.exec(line))
      .flatMap((m) => (m ? [{ digest: `sha256:${m[1]}`, actual: m[2] ?? '' }] : []));
    return { created: false, corrupt };
  }
  if (result.exitCode !== 0) {
    if (isNoSpace(result)) throw await noSpaceError(transport, layout.root, `staging ${dir}`);
    throw new ApertusError(
      'stage-failed',
      `Staging ${dir} on ${transport.description} failed: ${result.stderr.trim().slice(-500)}`,
      {
        kind: 'operation',
        hint: 'Nothing was switched; the host still runs what it ran. Fix what the error says and install again.',
      },
    );
  }
  return { created: result.stdout.trim().endsWith('created'), corrupt: [] };
}
