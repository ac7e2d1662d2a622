/**
 * The CycloneDX SBOM a bundle carries (a layer of its bundle manifest, written by
 * write-bundle.ts), for `apertus inspect --sbom`. Bundles written before SBOMs existed
 * have none: the caller gets an error that says to rebuild, never an SBOM made up from
 * less than the bundle was built from.
 */
import { ApertusError } from '../errors.js';
import { openBundle } from '../layout/bundle-reader.js';
import { loadBundle } from '../layout/load-bundle.js';
import { sha256Digest } from '../layout/manifests.js';
import { MEDIA_TYPE } from '../layout/media-types.js';
import { blobPath } from '../layout/names.js';
import type { RunOptions } from '../progress.js';

/** SBOMs of bundles with a large node_modules closure are a few hundred KB. */
const MAX_SBOM_BYTES = 64 << 20;

export interface BundleSbom {
  /** The SBOM blob's digest, covered by SHA256SUMS and the signature through the bundle manifest. */
  digest: string;
  /** The document exactly as stored. */
  bytes: Buffer;
  /** Parsed, for callers that look inside. */
  document: unknown;
}

export async function readBundleSbom(
  path: string,
  options: Pick<RunOptions, 'signal'> = {},
): Promise<BundleSbom> {
  const reader = await openBundle(path, options.signal ? { signal: options.signal } : {});
  try {
    const bundle = await loadBundle(reader);
    const layer = bundle.manifest.layers.find((candidate) => candidate.mediaType === MEDIA_TYPE.sbom);
    if (layer === undefined) {
      throw new ApertusError(
        'bundle-no-sbom',
        `${path} (${bundle.config.name} ${bundle.config.version}) holds no SBOM: it was written by an apertus without SBOM support`,
        {
          kind: 'operation',
          hint: `Rebuild it from its recipe with this apertus (\`apertus bundle RECIPE\`); the recipe is inside the bundle at ${blobPath(bundle.config.recipe.digest)}.`,
        },
      );
    }
    const bytes = await reader.readBytes(blobPath(layer.digest), { maxBytes: MAX_SBOM_BYTES });
    if (sha256Digest(bytes) !== layer.digest) {
      throw new ApertusError(
        'bundle-sbom-damaged',
        `the SBOM in ${path} does not match its digest ${layer.digest}`,
        {
          kind: 'operation',
          hint: `Run \`apertus verify ${path}\` to see what else is damaged, then copy the bundle again from its source.`,
        },
      );
    }
    let document: unknown;
    try {
      document = JSON.parse(bytes.toString('utf8'));
    } catch (error) {
      throw new ApertusError('bundle-sbom-damaged', `the SBOM in ${path} is not valid JSON`, {
        kind: 'operation',
        hint: 'The bundle was not written by apertus or was altered; rebuild it from its recipe.',
        cause: error,
      });
    }
    return { digest: layer.digest, bytes, document };
  } finally {
    await reader.close();
  }
}
