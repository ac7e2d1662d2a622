/**
 * A delta bundle installs only onto a host that holds what it leaves out. The install
 * plan already uploads just the blobs the host lacks; a left-out blob among them cannot
 * be uploaded, so the install is refused before anything is sent or changed.
 */
import { ApertusError } from '../errors.js';
import { bundleFileName } from '../layout/names.js';
import type { BundleConfig } from '../layout/types.js';
import type { InstallPlan } from './install-plan.js';

export interface MissingBase {
  blobs: Array<{ digest: string; size: number }>;
  bytes: number;
}

/** The left-out blobs the plan would have to upload, or null when the host holds them all. */
export function missingBaseBlobs(
  plan: InstallPlan,
  omitted: ReadonlyMap<string, number>,
): MissingBase | null {
  const blobs = plan.uploads
    .filter((upload) => omitted.has(upload.digest))
    .map((upload) => ({ digest: upload.digest, size: upload.size }));
  if (blobs.length === 0) return null;
  return { blobs, bytes: blobs.reduce((sum, blob) => sum + blob.size, 0) };
}

/** Throws when the host lacks blobs the delta leaves out; names the base to install first. */
export function assertDeltaBaseOnHost(
  plan: InstallPlan,
  config: BundleConfig,
  omitted: ReadonlyMap<string, number>,
  hostDescription: string,
): void {
  const missing = missingBaseBlobs(plan, omitted);
  if (missing === null) return;
  const base = config.delta?.base ?? null;
  const since = base === null ? 'a list of digests' : `${base.name} ${base.version} (${base.manifestDigest})`;
  const full = bundleFileName(config.name, config.version);
  throw new ApertusError(
    'delta-base-missing',
    `${config.name} ${config.version} is a delta bundle cut against ${since}; ${hostDescription} lacks ${missing.blobs.length} of the blobs it leaves out (${missing.bytes} bytes), so nothing was sent or changed.`,
    {
      kind: 'operation',
      hint:
        base === null
          ? `Install the full bundle ${full} on this host, or the release whose blobs the delta was cut against first.`
          : `Install ${base.name} ${base.version} (${bundleFileName(base.name, base.version)}) on this host first, then this delta; or install the full bundle ${full}.`,
      details: { missing: missing.blobs },
    },
  );
}
