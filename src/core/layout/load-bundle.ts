/**
 * Reads the manifest graph of a bundle: index.json -> bundle manifest -> config ->
 * component manifests -> layers. `readBundleGraph` reports every problem it finds as
 * data (verify shows them all); `loadBundle` is the strict form install and inspect use.
 * Neither hashes blob contents: that is verify's job.
 */
import type { z } from 'zod';
import { ApertusError } from '../errors.js';
import type { BundleReader } from './bundle-reader.js';
import {
  bundleConfigSchema,
  CURRENT_FORMAT_VERSION,
  describeIssues,
  imageComponentManifestSchema,
  modelConfigSchema,
  type OciIndex,
  type OciManifest,
  ociIndexSchema,
  ociManifestSchema,
} from './bundle-schemas.js';
import { EMPTY_CONFIG } from './manifests.js';
import {
  ANNOTATION,
  componentArtifactType,
  IMAGE_LAYER_MEDIA_TYPES,
  isModelPackLayer,
  layerFilePath,
  layerPlacement,
  MEDIA_TYPE,
  MODELPACK,
} from './media-types.js';
import { blobPath, confinedRelativePath, INDEX_FILE, OCI_LAYOUT_FILE, OCI_LAYOUT_VERSION } from './names.js';
import type { BundleConfig, ComponentLayers, Descriptor } from './types.js';

export interface LoadedBundle {
  index: OciIndex;
  /** Digest of the bundle manifest, the root of trust. */
  manifestDigest: string;
  manifest: OciManifest;
  config: BundleConfig;
  components: ComponentLayers[];
  /** Every blob the graph references (manifests, configs, recipe, layers) -> size. */
  blobs: Map<string, number>;
  /** Of those, the layer blobs a delta bundle leaves out (its config's delta.omitted) -> size; empty for a full bundle. */
  omitted: Map<string, number>;
}

export interface BundleProblem {
  /** The bundle path the problem is about ('index.json', 'blobs/sha256/<hex>'). */
  subject: string;
  status: 'missing' | 'invalid';
  detail: string;
}

export interface ReadGraphOptions {
  /** Sees the bytes of every metadata file read, so verify can hash them without a second read. */
  onRead?: (path: string, bytes: Buffer) => void;
}

/** Manifests and configs are a few KB; a megabyte-sized one means damage. */
const MAX_DOCUMENT_BYTES = 16 << 20;

export async function readBundleGraph(
  reader: BundleReader,
  options: ReadGraphOptions = {},
): Promise<{ bundle: LoadedBundle | undefined; problems: BundleProblem[] }> {
  const problems: BundleProblem[] = [];
  const blobs = new Map<string, number>();
  /** Filled from the config: layer blobs a delta may lack, which its base holds. */
  const omittable = new Map<string, number>();
  const omitted = new Map<string, number>();
  const problem = (subject: string, status: BundleProblem['status'], detail: string): undefined => {
    problems.push({ subject, status, detail });
    return undefined;
  };

  const readDocument = async <T>(
    path: string,
    what: string,
    schema: z.ZodType<T>,
    check?: (raw: unknown) => string | undefined,
  ): Promise<T | undefined> => {
    const entry = reader.get(path);
    if (entry === undefined) return problem(path, 'missing', `${what} is not in the bundle`);
    if (entry.size > MAX_DOCUMENT_BYTES)
      return problem(path, 'invalid', `${what} is ${entry.size} bytes, too large`);
    const bytes = await reader.readBytes(path, { maxBytes: MAX_DOCUMENT_BYTES });
    options.onRead?.(path, bytes);
    let raw: unknown;
    try {
      raw = JSON.parse(bytes.toString('utf8'));
    } catch {
      return problem(path, 'invalid', `${what} is not valid JSON`);
    }
    const early = check?.(raw);
    if (early !== undefined) return problem(path, 'invalid', `${what}: ${early}`);
    const parsed = schema.safeParse(raw);
    if (!parsed.success)
      return problem(path, 'invalid', `${what} is malformed: ${describeIssues(parsed.error)}`);
    return parsed.data;
  };

  /** Checks a referenced blob is present with the size its descriptor claims (or, for a delta's layer, left out). */
  const checkBlob = (descriptor: Descriptor, what: string, layer = false): string | undefined => {
    const path = blobPath(descriptor.digest);
    const entry = reader.get(path);
    const leftOut = layer && entry === undefined ? omittable.get(descriptor.digest) : undefined;
    if (leftOut !== undefined) {
      if (leftOut !== descriptor.size) {
        return problem(
          path,
          'invalid',
          `${what} is ${descriptor.size} bytes, the delta's list says ${leftOut}`,
        );
      }
      blobs.set(descriptor.digest, descriptor.size);
      omitted.set(descriptor.digest, descriptor.size);
      return undefined;
    }
    if (entry === undefined) return problem(path, 'missing', `${what} is not in the bundle`);
    if (entry.size !== descriptor.size) {
      return problem(
        path,
        'invalid',
        `${what} is ${entry.size} bytes, its descriptor says ${descriptor.size}`,
      );
    }
    blobs.set(descriptor.digest, descriptor.size);
    return path;
  };

  await readOciLayout(reader, options, problem);

  const index = await readDocument(INDEX_FILE, 'the image index', ociIndexSchema);
  if (index === undefined) return { bundle: undefined, problems };

  const bundleEntries = index.manifests.filter((entry) => entry.annotations?.[ANNOTATION.role] === 'bundle');
  const bundleEntry = bundleEntries[0];
  if (bundleEntry === undefined || bundleEntries.length > 1) {
    problem(
      INDEX_FILE,
      'invalid',
      `the index names ${bundleEntries.length} bundle manifests; exactly one is expected`,
    );
    return { bundle: undefined, problems };
  }
  const manifestDigest = bundleEntry.digest;
  const manifestPath = checkBlob(bundleEntry, 'the bundle manifest');
  if (manifestPath === undefined) return { bundle: undefined, problems };
  const manifest = await readDocument(manifestPath, 'the bundle manifest', ociManifestSchema);
  if (manifest === undefined) return { bundle: undefined, problems };
  if (
    manifest.artifactType !== MEDIA_TYPE.bundleArtifact ||
    manifest.config.mediaType !== MEDIA_TYPE.bundleConfig
  ) {
    problem(
      manifestPath,
      'invalid',
      `the bundle manifest has artifactType ${manifest.artifactType ?? '(none)'}`,
    );
    return { bundle: undefined, problems };
  }

  const configPath = checkBlob(manifest.config, 'the bundle config');
  if (configPath === undefined) return { bundle: undefined, problems };
  const config = await readDocument(configPath, 'the bundle config', bundleConfigSchema, checkFormatVersion);
  if (config === undefined) return { bundle: undefined, problems };
  for (const blob of config.delta?.omitted ?? []) omittable.set(blob.digest, blob.size);

  const recipe = manifest.layers.find((layer) => layer.digest === config.recipe.digest);
  if (recipe === undefined || recipe.mediaType !== MEDIA_TYPE.recipe) {
    problem(manifestPath, 'invalid', `the bundle manifest has no recipe layer ${config.recipe.digest}`);
  } else {
    checkBlob(recipe, 'the recipe');
  }
  // The SBOM (absent from bundles written before it) is part of the release, like the recipe.
  for (const layer of manifest.layers) {
    if (layer.mediaType === MEDIA_TYPE.sbom) checkBlob(layer, 'the SBOM');
  }

  const indexed = new Map(
    index.manifests
      .filter((entry) => entry.annotations?.[ANNOTATION.role] === 'component')
      .map((entry) => [entry.annotations?.[ANNOTATION.component] ?? '', entry]),
  );
  const components: ComponentLayers[] = [];
  const names = new Set<string>();
  for (const component of config.components) {
    const label = `component "${component.name}"`;
    if (names.has(component.name)) problem(configPath, 'invalid', `the bundle config lists ${label} twice`);
    names.add(component.name);
    const entry = indexed.get(component.name);
    if (entry?.digest !== component.manifest.digest) {
      problem(
        INDEX_FILE,
        'invalid',
        `the index does not list the manifest of ${label} as the bundle config does`,
      );
    }
    const path = checkBlob(component.manifest, `the manifest of ${label}`);
    if (path === undefined) continue;
    const componentManifest = await readDocument(
      path,
      `the manifest of ${label}`,
      component.kind === 'image' ? imageComponentManifestSchema : ociManifestSchema,
    );
    if (componentManifest === undefined) continue;
    const layers = checkComponentLayers(
      componentManifest,
      component.kind,
      config.formatVersion,
      label,
      path,
      problem,
    );
    if (layers === undefined) continue;
    const modelConfigPath = checkBlob(componentManifest.config, `the config of ${label}`);
    if (modelConfigPath !== undefined && componentManifest.artifactType === MODELPACK.artifactType) {
      const modelConfig = await readDocument(
        modelConfigPath,
        `the model config of ${label}`,
        modelConfigSchema,
      );
      const diffIds = modelConfig?.modelfs.diffIds;
      if (diffIds !== undefined && !sameDiffIds(diffIds, layers)) {
        problem(modelConfigPath, 'invalid', `the model config of ${label} does not list its layers' DiffIDs`);
      }
    }
    for (const layer of layers) {
      checkBlob(layer, `layer "${layerFilePath(layer) ?? layer.digest}" of ${label}`, true);
    }
    components.push({
      name: component.name,
      kind: component.kind,
      manifestDigest: component.manifest.digest,
      config: componentManifest.config,
      layers,
    });
  }
  for (const name of indexed.keys()) {
    if (!names.has(name))
      problem(INDEX_FILE, 'invalid', `the index lists component "${name}", the bundle config does not`);
  }

  if (problems.length > 0) return { bundle: undefined, problems };
  for (const digest of omittable.keys()) {
    if (!omitted.has(digest) && !blobs.has(digest)) {
      problem(configPath, 'invalid', `the delta lists ${digest} as left out, but no layer references it`);
    }
  }
  if (problems.length > 0) return { bundle: undefined, problems };
  return { bundle: { index, manifestDigest, manifest, config, components, blobs, omitted }, problems };
}

/** The strict form: the loaded bundle, or an ApertusError listing what is wrong. */
export async function loadBundle(reader: BundleReader): Promise<LoadedBundle> {
  const { bundle, problems } = await readBundleGraph(reader);
  const first = problems[0];
  if (bundle === undefined || first !== undefined) {
    const newer = problems.find((entry) => entry.detail.includes('newer apertus'));
    throw new ApertusError(
      newer === undefined ? 'bundle-invalid' : 'bundle-format-newer',
      `${reader.path} is not a valid bundle: ${first?.subject ?? reader.path}: ${first?.detail ?? 'unreadable'}${problems.length > 1 ? ` (and ${problems.length - 1} more problems)` : ''}`,
      {
        // A bundle that fails to load is refused, like a failed verification: not a usage error.
        kind: 'operation',
        hint:
          newer === undefined
            ? `Run \`apertus verify ${reader.path}\` for the full list, then copy the bundle again from its source.`
            : 'Install a newer apertus to read this bundle.',
        details: problems,
      },
    );
  }
  return bundle;
}

async function readOciLayout(
  reader: BundleReader,
  options: ReadGraphOptions,
  problem: (subject: string, status: BundleProblem['status'], detail: string) => undefined,
): Promise<void> {
  if (reader.get(OCI_LAYOUT_FILE) === undefined) {
    problem(OCI_LAYOUT_FILE, 'missing', 'the OCI layout marker is not in the bundle');
    return;
  }
  const bytes = await reader.readBytes(OCI_LAYOUT_FILE, { maxBytes: 4096 }).catch(() => undefined);
  if (bytes === undefined) {
    problem(OCI_LAYOUT_FILE, 'invalid', 'the OCI layout marker is too large');
    return;
  }
  options.onRead?.(OCI_LAYOUT_FILE, bytes);
  let version: unknown;
  try {
    version = (JSON.parse(bytes.toString('utf8')) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
  } catch {
    version = undefined;
  }
  if (version !== OCI_LAYOUT_VERSION) {
    problem(OCI_LAYOUT_FILE, 'invalid', `imageLayoutVersion is not "${OCI_LAYOUT_VERSION}"`);
  }
}

function checkFormatVersion(raw: unknown): string | undefined {
  const version = (raw as { formatVersion?: unknown } | null)?.formatVersion;
  if (typeof version === 'number' && version > CURRENT_FORMAT_VERSION) {
    return `format version ${version} needs a newer apertus (this one reads up to ${CURRENT_FORMAT_VERSION})`;
  }
  return undefined;
}

/** A raw layer's DiffID is its digest; a tar layer's is the digest of the tar itself, uncompressed too. */
function sameDiffIds(diffIds: string[], layers: Descriptor[]): boolean {
  return diffIds.length === layers.length && layers.every((layer, i) => diffIds[i] === layer.digest);
}

function checkComponentLayers(
  manifest: Pick<OciManifest, 'artifactType' | 'config' | 'layers'>,
  kind: string,
  formatVersion: number,
  label: string,
  path: string,
  problem: (subject: string, status: BundleProblem['status'], detail: string) => undefined,
): Descriptor[] | undefined {
  if (kind === 'image') {
    // The image's own manifest: its config is the image config, its layers are loaded by podman or docker.
    const unknown = manifest.layers.find((layer) => !IMAGE_LAYER_MEDIA_TYPES.has(layer.mediaType));
    if (unknown !== undefined) {
      return problem(
        path,
        'invalid',
        `the manifest of ${label} has an image layer of unknown type ${unknown.mediaType}`,
      );
    }
    return manifest.layers;
  }
  // Format 2 writes models as ModelPack artifacts; format 1 bundles keep the apertus model artifact.
  // Adapters (LoRA weights) are ModelPack model artifacts too.
  const modelPack = (kind === 'model' || kind === 'adapter') && formatVersion >= 2;
  if (modelPack) {
    if (manifest.artifactType !== MODELPACK.artifactType || manifest.config.mediaType !== MODELPACK.config) {
      return problem(
        path,
        'invalid',
        `the manifest of ${label} is not a ModelPack model (artifactType ${manifest.artifactType ?? '(none)'}, config ${manifest.config.mediaType})`,
      );
    }
  } else {
    if (manifest.artifactType !== componentArtifactType(kind)) {
      return problem(
        path,
        'invalid',
        `the manifest of ${label} has artifactType ${manifest.artifactType ?? '(none)'}`,
      );
    }
    if (manifest.config.digest !== EMPTY_CONFIG.descriptor.digest) {
      return problem(
        path,
        'invalid',
        `the manifest of ${label} has a config other than the OCI empty descriptor`,
      );
    }
  }
  const titles = new Set<string>();
  for (const layer of manifest.layers) {
    const known = modelPack ? isModelPackLayer(layer.mediaType) : !isModelPackLayer(layer.mediaType);
    const placement = known ? layerPlacement(layer.mediaType) : undefined;
    if (placement === undefined) {
      return problem(
        path,
        'invalid',
        `the manifest of ${label} has a layer of unknown type ${layer.mediaType}`,
      );
    }
    if (placement === 'tar' && !modelPack) continue;
    const title = layerFilePath(layer);
    const ociTitle = layer.annotations?.[ANNOTATION.title];
    if (ociTitle !== undefined && title !== ociTitle) {
      // Tools read one or the other; a layer that names two paths would land in two places.
      return problem(path, 'invalid', `the manifest of ${label} has a layer whose filepath and title differ`);
    }
    if (title === undefined || confinedRelativePath(title) !== title) {
      return problem(
        path,
        'invalid',
        `the manifest of ${label} has a file layer without a plain relative title`,
      );
    }
    if (titles.has(title)) return problem(path, 'invalid', `the manifest of ${label} lists "${title}" twice`);
    titles.add(title);
    const mode = layer.annotations?.[ANNOTATION.mode];
    if (mode !== undefined && mode !== '0755' && mode !== '0644') {
      return problem(path, 'invalid', `the manifest of ${label} gives "${title}" mode ${mode}`);
    }
  }
  return manifest.layers;
}
