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

/**
 * Model components (format 2 on) are CNCF ModelPack v1 artifacts, so KitOps, modctl, KServe
 * and any OCI registry read them (modelpack/model-spec specs-go/v1/mediatype.go). Layers are
 * `.raw`: one file, uncompressed, so a layer's digest is the file's sha256 (the Hub's LFS oid),
 * the host hard-links it from its content store as before, and nothing is extracted twice.
 * `.tar` layers (one file or directory in a tar) are read too, when a pulled artifact has them.
 */
export const MODELPACK = {
  artifactType: 'application/vnd.cncf.model.manifest.v1+json',
  config: 'application/vnd.cncf.model.config.v1+json',
  weight: 'application/vnd.cncf.model.weight.v1.raw',
  weightConfig: 'application/vnd.cncf.model.weight.config.v1.raw',
  doc: 'application/vnd.cncf.model.doc.v1.raw',
  code: 'application/vnd.cncf.model.code.v1.raw',
} as const;

const MODELPACK_LAYER =
  /^application\/vnd\.cncf\.model\.(weight|weight\.config|doc|code|dataset)\.v1\.(raw|tar)$/;

/** How a component layer becomes files on the host: linked as one file, extracted as a tar, or neither. */
export function layerPlacement(mediaType: string): 'file' | 'tar' | undefined {
  if (mediaType === MEDIA_TYPE.file) return 'file';
  if (mediaType === MEDIA_TYPE.tarLayer) return 'tar';
  const modelPack = MODELPACK_LAYER.exec(mediaType);
  if (modelPack === null) return undefined;
  return modelPack[2] === 'raw' ? 'file' : 'tar';
}

/** Whether a ModelPack layer type is one this version reads (compressed ones are not). */
export function isModelPackLayer(mediaType: string): boolean {
  return MODELPACK_LAYER.test(mediaType);
}

/** The path a file layer has inside its component: ModelPack's filepath, else the OCI title. */
export function layerFilePath(layer: {
  annotations?: Record<string, string> | undefined;
}): string | undefined {
  return layer.annotations?.[ANNOTATION.filepath] ?? layer.annotations?.[ANNOTATION.title];
}

export function componentArtifactType(kind: string): string {
  return `application/vnd.apertus.component.${kind}.v1`;
}

export const ANNOTATION = {
  title: 'org.opencontainers.image.title',
  /** ModelPack: the layer's path inside the model directory (specs-go/v1/annotations.go). */
  filepath: 'org.cncf.model.filepath',
  refName: 'org.opencontainers.image.ref.name',
  version: 'org.opencontainers.image.version',
  /** Octal file mode for file layers that must be executable, e.g. '0755'. */
  mode: 'dev.apertus.file.mode',
  /** On index.json entries: 'bundle' or 'component'. */
  role: 'dev.apertus.role',
  component: 'dev.apertus.component',
  /** On an adapter's manifest: the base model component it is bound to, and how it is pinned. */
  adapterBase: 'dev.apertus.adapter.base',
  /** The base's pinned source (hf://ORG/NAME@COMMIT, oci:…, file:…), for readers outside the bundle. */
  adapterBaseSource: 'dev.apertus.adapter.base.source',
  adapterBaseRevision: 'dev.apertus.adapter.base.revision',
  adapterBaseDigest: 'dev.apertus.adapter.base.digest',
} as const;
