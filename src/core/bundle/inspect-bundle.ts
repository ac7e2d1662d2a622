/**
 * What a bundle holds, as plain data, read from its manifests without hashing any
 * blob: fast on a 100 GB bundle. The signature is reported, not checked; that is
 * `verifyBundle`'s job.
 */
import { type BundleFormat, type BundleReader, openBundle } from '../layout/bundle-reader.js';
import { loadBundle } from '../layout/load-bundle.js';
import { ANNOTATION, layerFilePath, layerPlacement, MEDIA_TYPE } from '../layout/media-types.js';
import { CLI_DIR, CLI_PATHS, SIGNATURE_FILE } from '../layout/names.js';
import type { BundleConfig, ComponentKind, Descriptor, ServiceSpec } from '../layout/types.js';
import type { RunOptions } from '../progress.js';
import { parseSignature } from '../sign/minisign.js';

export interface BundleSummary {
  path: string;
  format: BundleFormat;
  name: string;
  version: string;
  description: string;
  formatVersion: number;
  manifestDigest: string;
  /** A signature file is present. Not verified here: run verify with the public key. */
  signed: boolean;
  /** The key id the signature names, or null when unsigned or unreadable. */
  keyId: string | null;
  components: Array<{
    name: string;
    kind: ComponentKind;
    manifestDigest: string;
    provenance: BundleConfig['components'][number]['provenance'];
    /** Number of layers. */
    layers: number;
    /** Sum of the layer sizes. */
    bytes: number;
    contents: Array<{ title: string; type: 'file' | 'tar'; digest: string; size: number; mode?: string }>;
  }>;
  services: ServiceSpec[];
  requirements: BundleConfig['requirements'];
  /** Distinct blobs the manifests reference, and their bytes. */
  blobs: number;
  blobBytes: number;
  /** Bytes on disk: the tar (all parts, for a split bundle), or the files of the directory. */
  totalSize: number;
  /** The CycloneDX SBOM blob (`inspect --sbom` prints it); null for bundles written before SBOMs. */
  sbom: { digest: string; size: number } | null;
  /** The apertus CLI carried under apertus/ (`tar -xf BUNDLE apertus/`); null when left out. */
  cli: { files: number; bytes: number; version: string | null } | null;
  /** A delta bundle: the base it was cut against and the layer blobs it leaves out; null for a full bundle. */
  delta: {
    base: NonNullable<BundleConfig['delta']>['base'];
    omittedBlobs: number;
    omittedBytes: number;
  } | null;
}

export async function inspectBundle(
  path: string,
  options: Pick<RunOptions, 'signal'> = {},
): Promise<BundleSummary> {
  const reader = await openBundle(path, options.signal ? { signal: options.signal } : {});
  try {
    const bundle = await loadBundle(reader);
    const { config } = bundle;
    const keyId = await signatureKeyId(reader);
    return {
      path,
      format: reader.format,
      name: config.name,
      version: config.version,
      description: config.description,
      formatVersion: config.formatVersion,
      manifestDigest: bundle.manifestDigest,
      signed: reader.get(SIGNATURE_FILE) !== undefined,
      keyId,
      components: bundle.components.map((component) => ({
        name: component.name,
        kind: component.kind,
        manifestDigest: component.manifestDigest,
        provenance: config.components.find((entry) => entry.name === component.name)?.provenance ?? {
          source: '',
        },
        layers: component.layers.length,
        bytes: component.layers.reduce((sum, layer) => sum + layer.size, 0),
        contents: component.layers.map((layer) => {
          const mode = layer.annotations?.[ANNOTATION.mode];
          return {
            title: layerFilePath(layer) ?? layer.digest,
            type: layerPlacement(layer.mediaType) === 'tar' ? ('tar' as const) : ('file' as const),
            digest: layer.digest,
            size: layer.size,
            ...(mode === undefined ? {} : { mode }),
          };
        }),
      })),
      services: config.services,
      requirements: config.requirements,
      blobs: bundle.blobs.size,
      blobBytes: [...bundle.blobs.values()].reduce((sum, size) => sum + size, 0),
      totalSize: reader.size,
      sbom: sbomOf(bundle.manifest.layers),
      cli: await cliOf(reader),
      delta:
        config.delta === undefined
          ? null
          : {
              base: config.delta.base,
              omittedBlobs: bundle.omitted.size,
              omittedBytes: [...bundle.omitted.values()].reduce((sum, size) => sum + size, 0),
            },
    };
  } finally {
    await reader.close();
  }
}

async function signatureKeyId(reader: BundleReader): Promise<string | null> {
  if (reader.get(SIGNATURE_FILE) === undefined) return null;
  const text = await reader.readText(SIGNATURE_FILE, { maxBytes: 64 << 10 }).catch(() => undefined);
  if (text === undefined) return null;
  const parsed = parseSignature(text);
  return 'error' in parsed ? null : parsed.keyId;
}

async function cliOf(reader: BundleReader): Promise<BundleSummary['cli']> {
  const files = reader.entries.filter((entry) => entry.path.startsWith(`${CLI_DIR}/`));
  if (files.length === 0) return null;
  const manifest = await reader
    .readText(`${CLI_DIR}/${CLI_PATHS.cliDir}/package.json`, { maxBytes: 64 << 10 })
    .catch(() => undefined);
  let version: string | null = null;
  try {
    version =
      manifest === undefined
        ? null
        : String((JSON.parse(manifest) as { version?: unknown }).version ?? '') || null;
  } catch {}
  return { files: files.length, bytes: files.reduce((sum, entry) => sum + entry.size, 0), version };
}

function sbomOf(layers: Descriptor[]): BundleSummary['sbom'] {
  const layer = layers.find((candidate) => candidate.mediaType === MEDIA_TYPE.sbom);
  return layer === undefined ? null : { digest: layer.digest, size: layer.size };
}
