import path from 'node:path/posix';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import type { ServiceSpec } from '../layout/types.js';
import type { InstallPlan } from '../operations/install-plan.js';
import type { HostLayout } from './layout.js';

/** Written into every release; a release without it is incomplete and is rebuilt. */
export const RELEASE_FILE = 'release.json';

/** What a release is and runs; rollback starts a previous release's services from it. */
export interface ReleaseRecord {
  name: string;
  version: string;
  manifestDigest: string;
  stagedAt: string;
  services: ServiceSpec[];
}

/**
 * Materialises the release from the host's blob store: hard links for file layers (no
 * data is copied), extraction for tar layers, all in a staging directory that is renamed
 * into place at the end. A complete release of the same bundle is kept as it is.
 * Returns whether a new release directory was created.
 */
export async function stageRelease(
  transport: Transport,
  layout: HostLayout,
  plan: InstallPlan,
  services: ServiceSpec[],
  signal?: AbortSignal,
): Promise<{ created: boolean }> {
  const q = (value: string) => shellQuote([value]);
  const { dir } = plan.release;
  const staging = path.join(path.dirname(dir), `.staging-${path.basename(dir)}`);
  const record: ReleaseRecord = {
    name: plan.bundle.name,
    version: plan.bundle.version,
    manifestDigest: plan.bundle.manifestDigest,
    stagedAt: new Date().toISOString(),
    services,
  };
  const lines = [
    'set -eu',
    `if [ -f ${q(path.join(dir, RELEASE_FILE))} ] && grep -q ${q(plan.bundle.manifestDigest)} ${q(path.join(dir, RELEASE_FILE))}; then echo kept; exit 0; fi`,
    // A release dir without its record (or of another bundle) is a leftover: it is rebuilt.
    `if [ -e ${q(dir)} ] && [ ${q(plan.release.linkTarget)} = "$(readlink ${q(layout.current)} 2>/dev/null)" ]; then echo "release dir in use but incomplete" >&2; exit 3; fi`,
    `rm -rf ${q(staging)} ${q(dir)}`,
    `mkdir -p ${q(staging)}`,
  ];
  for (const step of plan.materialise) {
    const blob = layout.blob(step.digest);
    if (step.type === 'link') {
      const to = path.join(staging, path.relative(dir, step.to));
      lines.push(`mkdir -p ${q(path.dirname(to))}`);
      if (step.executable) lines.push(`chmod 0555 ${q(blob)}`);
      lines.push(`ln ${q(blob)} ${q(to)}`);
    } else {
      const into = path.join(staging, path.relative(dir, step.into));
      // --no-same-owner: files belong to the installing user, whatever the tar says.
      lines.push(`mkdir -p ${q(into)}`, `tar -xf ${q(blob)} -C ${q(into)} --no-same-owner`);
    }
  }
  lines.push(
    `printf '%s\\n' ${q(JSON.stringify(record))} > ${q(path.join(staging, RELEASE_FILE))}`,
    `mv ${q(staging)} ${q(dir)}`,
    'echo created',
  );
  const result = await transport.exec('sh -s', { stdin: `${lines.join('\n')}\n`, signal });
  return { created: result.stdout.trim().endsWith('created') };
}
