/**
 * Media types of container images as registries serve them (runtime-facts §5.1, image-spec
 * media-types.md), OCI and Docker alike. These are the pulled image's own types, not the
 * bundle format's (src/core/layout/media-types.ts).
 */
export const IMAGE_MEDIA_TYPE = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

/**
 * Sent with every manifest request: both families, indexes first. Registry 2.8 answers 404
 * to an OCI manifest asked for with Docker types only (DESIGN.md section 7).
 */
export const MANIFEST_ACCEPT = [
  IMAGE_MEDIA_TYPE.ociIndex,
  IMAGE_MEDIA_TYPE.dockerManifestList,
  IMAGE_MEDIA_TYPE.ociManifest,
  IMAGE_MEDIA_TYPE.dockerManifest,
].join(', ');

export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === IMAGE_MEDIA_TYPE.ociIndex || mediaType === IMAGE_MEDIA_TYPE.dockerManifestList;
}

export function isImageManifestMediaType(mediaType: string): boolean {
  return mediaType === IMAGE_MEDIA_TYPE.ociManifest || mediaType === IMAGE_MEDIA_TYPE.dockerManifest;
}

export function isImageConfigMediaType(mediaType: string): boolean {
  return mediaType === IMAGE_MEDIA_TYPE.ociConfig || mediaType === IMAGE_MEDIA_TYPE.dockerConfig;
}

/**
 * Layer types docker load and podman load both take: tars, gzip or zstd compressed
 * (runtime-facts §5.3: docker decompresses each layer stream). Non-distributable ("foreign")
 * layers are left out on purpose: registries do not serve them, they are fetched from `urls`.
 */
const LAYER_MEDIA_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.diff.tar',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
]);

export function isLayerMediaType(mediaType: string): boolean {
  return LAYER_MEDIA_TYPES.has(mediaType);
}

/** The annotation buildx puts on attestation manifests in an index (runtime-facts §5.1 step 5). */
export const REFERENCE_TYPE_ANNOTATION = 'vnd.docker.reference.type';
export const LICENSES_LABEL = 'org.opencontainers.image.licenses';
