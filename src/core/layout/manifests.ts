/**
 * The JSON documents a bundle is made of: component manifests, the bundle manifest
 * and index.json, written canonically so the same inputs give the same digests.
 */
import { createHash } from 'node:crypto';
import { canonicalJsonBytes } from './canonical-json.js';
import { ANNOTATION, componentArtifactType, MEDIA_TYPE } from './media-types.js';
import type { ComponentKind, Descriptor } from './types.js';

export interface Blob {
  descriptor: Descriptor;
  bytes: Buffer;
}

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function blobOf(mediaType: string, bytes: Buffer, extra: Partial<Descriptor> = {}): Blob {
  return { descriptor: { mediaType, digest: sha256Digest(bytes), size: bytes.length, ...extra }, bytes };
}

/** The OCI empty descriptor's blob, `{}`, used as the config of component manifests. */
export const EMPTY_CONFIG: Blob = blobOf(MEDIA_TYPE.ociEmpty, Buffer.from('{}'));

export function fileLayerDescriptor(digest: string, size: number, title: string, mode?: number): Descriptor {
  const annotations: Record<string, string> = { [ANNOTATION.title]: title };
  if (mode === 0o755) annotations[ANNOTATION.mode] = '0755';
  return { mediaType: MEDIA_TYPE.file, digest, size, annotations };
}

export function tarLayerDescriptor(digest: string, size: number, name: string): Descriptor {
  return { mediaType: MEDIA_TYPE.tarLayer, digest, size, annotations: { [ANNOTATION.title]: name } };
}

export function componentManifest(
  component: { name: string; kind: ComponentKind },
  layers: Descriptor[],
): Blob {
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE.ociManifest,
    artifactType: componentArtifactType(component.kind),
    config: EMPTY_CONFIG.descriptor,
    layers,
    annotations: { [ANNOTATION.component]: component.name },
  };
  return blobOf(MEDIA_TYPE.ociManifest, canonicalJsonBytes(manifest), {
    artifactType: componentArtifactType(component.kind),
  });
}

export function bundleManifest(
  bundle: { name: string; version: string },
  config: Descriptor,
  recipe: Descriptor,
  /** After the recipe: the SBOM (bundles written before it have none). */
  extraLayers: Descriptor[] = [],
): Blob {
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE.ociManifest,
    artifactType: MEDIA_TYPE.bundleArtifact,
    config,
    layers: [recipe, ...extraLayers],
    annotations: { [ANNOTATION.title]: bundle.name, [ANNOTATION.version]: bundle.version },
  };
  return blobOf(MEDIA_TYPE.ociManifest, canonicalJsonBytes(manifest), {
    artifactType: MEDIA_TYPE.bundleArtifact,
  });
}

export function bundleIndex(
  bundle: { name: string; version: string; manifest: Descriptor },
  components: Array<{ name: string; manifest: Descriptor }>,
): Buffer {
  const manifests: Descriptor[] = [
    {
      ...bundle.manifest,
      annotations: { [ANNOTATION.role]: 'bundle', [ANNOTATION.refName]: `${bundle.name}:${bundle.version}` },
    },
    ...components.map((component) => ({
      ...component.manifest,
      // A ref name per component: `skopeo copy oci:DIR:NAME docker://…` copies any one of them.
      annotations: {
        [ANNOTATION.role]: 'component',
        [ANNOTATION.component]: component.name,
        [ANNOTATION.refName]: component.name,
      },
    })),
  ];
  return canonicalJsonBytes({ schemaVersion: 2, mediaType: MEDIA_TYPE.ociIndex, manifests });
}
