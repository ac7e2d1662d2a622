import path from 'node:path/posix';
import { ApertusError } from '../errors.js';
import { ANNOTATION, layerFilePath, layerPlacement } from '../layout/media-types.js';
import type { BundleConfig, ComponentLayers, Descriptor } from '../layout/types.js';
import { parseOciReference, repoTag } from '../sources/oci/parse-oci-reference.js';
import type { HostLayout } from '../target/layout.js';
import type { HostProbe } from '../target/probe.js';
import { hfCacheMaterialisation } from './hf-cache-plan.js';

export interface BlobTransfer {
  digest: string;
  size: number;
  /** Bytes already on the host from an interrupted upload; the upload resumes there. */
  resumeFrom: number;
}

/** How one layer becomes files in the release directory. */
export type Materialisation =
  | { type: 'link'; digest: string; to: string; executable: boolean }
  | { type: 'extract'; digest: string; into: string }
  /** A small file apertus writes itself (the Hugging Face cache's refs/main, hf-cache-plan.ts). */
  | { type: 'write'; to: string; content: string };

/** An image component, loaded into podman or docker from the blob store (src/core/sources/oci/image-archive.ts). */
export interface ImageLoad {
  component: string;
  manifest: Descriptor;
  config: { digest: string };
  layers: Array<{ digest: string }>;
  /** REGISTRY/NAME:TAG, from the component's oci: source and its manifest digest. */
  repoTags: string[];
  archiveDir: string;
}

/** Everything an install will do, as data: `--dry-run` prints it, apply executes it. */
export interface InstallPlan {
  bundle: { name: string; version: string; manifestDigest: string };
  release: { dir: string; linkTarget: string; previous: string | null; reinstall: boolean };
  blobs: { total: number; totalBytes: number; present: number };
  uploads: BlobTransfer[];
  /** Blobs in the host's store with another size than the bundle's: uploaded again. */
  wrongSize: Array<{ digest: string; size: number; found: number }>;
  uploadBytes: number;
  materialise: Materialisation[];
  images: ImageLoad[];
  diskNeededBytes: number;
  diskAvailableBytes: number;
}

export interface PlanInput {
  config: BundleConfig;
  manifestDigest: string;
  components: ComponentLayers[];
  /** Every blob of the bundle (digest -> size): manifests and configs travel too, for audit. */
  blobs: Map<string, number>;
}

/**
 * What the host's store holds decides what travels: a blob counts as present only when
 * its size matches (its hash is checked when a release first uses it, stage.ts); one of
 * the wrong size is uploaded again and named.
 */
/** What the plan needs of the probe: the store's blobs and partial uploads, `current`, and the root's free disk. */
export interface StoreView {
  root: Pick<HostProbe['root'], 'blobs' | 'partial' | 'current'>;
  disks: ReadonlyArray<Pick<HostProbe['disks'][number], 'availableBytes'>>;
}

export function planInstall(input: PlanInput, host: StoreView, layout: HostLayout): InstallPlan {
  const { config } = input;
  const hex = (digest: string) => digest.replace(/^sha256:/, '');
  const uploads: BlobTransfer[] = [];
  const wrongSize: InstallPlan['wrongSize'] = [];
  let totalBytes = 0;
  for (const [digest, size] of [...input.blobs].sort(([a], [b]) => a.localeCompare(b))) {
    totalBytes += size;
    const held = host.root.blobs.get(hex(digest));
    if (held === size) continue;
    if (held !== undefined) wrongSize.push({ digest, size, found: held });
    const partial = host.root.partial.get(hex(digest)) ?? 0;
    uploads.push({ digest, size, resumeFrom: partial > 0 && partial < size ? partial : 0 });
  }
  const uploadBytes = uploads.reduce((sum, u) => sum + u.size - u.resumeFrom, 0);

  const releaseDir = layout.release(config.name, config.version);
  const materialise: Materialisation[] = [];
  const images: ImageLoad[] = [];
  for (const component of input.components) {
    if (component.kind === 'image') {
      // Never extracted: an uncompressed image layer has the same media type as our tar layers.
      const entry = config.components.find((c) => c.name === component.name);
      if (entry === undefined) continue;
      images.push({
        component: component.name,
        manifest: entry.manifest,
        config: component.config,
        layers: component.layers,
        repoTags: [repoTag(parseOciReference(entry.provenance.source), entry.manifest.digest)],
        archiveDir: layout.image(entry.manifest.digest),
      });
      continue;
    }
    const componentDir = path.join(releaseDir, confined(component.name, 'component name'));
    for (const layer of component.layers) {
      const placement = layerPlacement(layer.mediaType);
      if (placement === 'tar') {
        materialise.push({ type: 'extract', digest: layer.digest, into: componentDir });
        continue;
      }
      const title = layerFilePath(layer);
      if (placement !== 'file' || !title) {
        throw new ApertusError(
          'bundle-layer-unsupported',
          `Component ${component.name} has a layer (${layer.digest}) of type ${layer.mediaType} that this installer cannot place.`,
          {
            hint: 'Install it with the apertus version that wrote the bundle (the bundle carries it under apertus/).',
          },
        );
      }
      materialise.push({
        type: 'link',
        digest: layer.digest,
        to: path.join(componentDir, confined(title, `layer title in ${component.name}`)),
        executable: layer.annotations?.[ANNOTATION.mode] === '0755',
      });
    }
  }

  materialise.push(...hfCacheMaterialisation(config, materialise, releaseDir));

  return {
    bundle: { name: config.name, version: config.version, manifestDigest: input.manifestDigest },
    release: {
      dir: releaseDir,
      linkTarget: layout.releaseLinkTarget(config.name, config.version),
      previous: host.root.current,
      reinstall: host.root.current === layout.releaseLinkTarget(config.name, config.version),
    },
    blobs: { total: input.blobs.size, totalBytes, present: input.blobs.size - uploads.length },
    uploads,
    wrongSize,
    uploadBytes,
    materialise,
    images,
    // Hard links cost no data blocks; extracted tar layers do, so count them twice to be safe.
    diskNeededBytes:
      uploadBytes +
      materialise
        .filter((m) => m.type === 'extract')
        .reduce((sum, m) => sum + (input.blobs.get(m.digest) ?? 0), 0),
    diskAvailableBytes: host.disks[0]?.availableBytes ?? Number.NaN,
  };
}

/** A relative path that stays inside its directory: bundle content never names where it lands. */
function confined(relative: string, what: string): string {
  const normal = path.normalize(relative);
  if (path.isAbsolute(relative) || normal === '..' || normal.startsWith('../') || normal === '.') {
    throw new ApertusError('bundle-path-unsafe', `The bundle's ${what} "${relative}" leaves its directory.`, {
      kind: 'operation',
      hint: 'The bundle was not written by apertus or was altered; do not install it. Rebuild it from its recipe.',
    });
  }
  return normal;
}
