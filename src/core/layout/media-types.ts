/** Media types and annotation keys of the apertus bundle format. */
export const MEDIA_TYPE = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  /** A layer that is one file, materialised at its title path inside the component. */
  file: 'application/vnd.apertus.file.v1',
  /** A layer that is an uncompressed tar, extracted into the component's directory. */
  tarLayer: 'application/vnd.oci.image.layer.v1.tar',
  bundleArtifact: 'application/vnd.apertus.bundle.v1+json',
  bundleConfig: 'application/vnd.apertus.bundle.config.v1+json',
  recipe: 'application/vnd.apertus.recipe.v1+yaml',
  /** The bundle's CycloneDX JSON SBOM, a layer of the bundle manifest (IANA-registered type). */
  sbom: 'application/vnd.cyclonedx+json',
  /** Image components: the image manifest as pulled may be Docker's schema 2. */
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
} as const;

/** Layers of image components, as registries serve them; docker load and podman load take them all. */
export const IMAGE_LAYER_MEDIA_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.diff.tar',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
]);

export function componentArtifactType(kind: string): string {
  return `application/vnd.apertus.component.${kind}.v1`;
}

export const ANNOTATION = {
  title: 'org.opencontainers.image.title',
  refName: 'org.opencontainers.image.ref.name',
  version: 'org.opencontainers.image.version',
  /** Octal file mode for file layers that must be executable, e.g. '0755'. */
  mode: 'dev.apertus.file.mode',
  /** On index.json entries: 'bundle' or 'component'. */
  role: 'dev.apertus.role',
  component: 'dev.apertus.component',
} as const;
