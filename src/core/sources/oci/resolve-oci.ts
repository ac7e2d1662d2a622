/**
 * Resolution of an `oci:` source to one exact image, reading metadata only (nothing lands on
 * disk, so `bundle --dry-run` can show it), the pull flow of runtime-facts §5.1: the tag (or
 * digest) gives a manifest or an index; from an index the entry for the target platform is
 * picked (attestation entries, `unknown/unknown`, are skipped) and fetched by digest; the
 * image config is read for its platform, its labels (the licence) and its environment
 * (CUDA_VERSION, for the driver check). The platform manifest's digest is the revision.
 */
import type { z } from 'zod';
import { ApertusError } from '../../errors.js';
import { isModelPackLayer, MODELPACK } from '../../layout/media-types.js';
import type { ResolvedFile, ResolvedSource, SourceContext } from '../types.js';
import {
  isImageConfigMediaType,
  isImageManifestMediaType,
  isIndexMediaType,
  isLayerMediaType,
  LICENSES_LABEL,
  REFERENCE_TYPE_ANNOTATION,
} from './image-media-types.js';
import {
  type ImageConfig,
  type ImageDescriptor,
  type ImageManifest,
  imageConfigSchema,
  imageIndexSchema,
  imageManifestSchema,
} from './image-schemas.js';
import { type OciReference, parseOciReference, pinnedReference, repoTag } from './parse-oci-reference.js';
import { createRegistryClient, type RegistryClient, type RegistryManifest } from './registry-client.js';
import type { RegistryCredentials } from './registry-credentials.js';

export interface ResolveOciOptions {
  /** 'os/architecture[/variant]'; default 'linux/amd64'. */
  platform?: string;
  /** Plain HTTP to the registry (a local test registry). */
  insecure?: boolean;
  credentials?: RegistryCredentials;
  /** The component's kind: 'model' takes a ModelPack model artifact instead of an image. */
  kind?: 'image' | 'model';
}

/** One blob of the image as its manifest lists it. */
export interface OciImageBlob {
  mediaType: string;
  digest: string;
  size: number;
}

export interface OciResolvedFile extends ResolvedFile {
  digest: string;
  mediaType: string;
}

export interface OciResolvedSource extends ResolvedSource {
  kind: 'oci';
  /** Where to fetch from again: the parsed source (its tag, if any, names the image on hosts). */
  reference: OciReference;
  /** 'os/architecture[/variant]' of the image picked. */
  platform: string;
  /** The platform's image manifest: its digest is `revision`, its bytes are stored as they are. */
  manifest: OciImageBlob;
  /** The index the platform was picked from, when the source named one. */
  index?: { mediaType: string; digest: string };
  config: OciImageBlob;
  /** In manifest order; a layer may appear twice. */
  layers: OciImageBlob[];
  /** The name:tag the image is loaded as on a host (docker manifest.json RepoTags). */
  repoTag: string;
  /** What the image config says, for checks (CUDA_VERSION) and provenance. */
  image: { env: string[]; labels: Record<string, string>; entrypoint?: string[]; cmd?: string[] };
  /** The config, then each distinct layer: path `blobs/sha256/<hex>`, as in the image archive on the host. */
  files: OciResolvedFile[];
}

export const DEFAULT_PLATFORM = 'linux/amd64';
/** Image configs are a few KB; some hold long histories. */
export const MAX_CONFIG_BYTES = 8 << 20;
const MAX_INDEX_DEPTH = 2;

interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export function parsePlatform(value: string): Platform {
  const match = /^([a-z0-9]+)\/([a-z0-9_]+)(?:\/([a-z0-9]+))?$/.exec(value);
  if (match?.[1] === undefined || match[2] === undefined) {
    throw new ApertusError('oci-platform-invalid', `The platform ${JSON.stringify(value)} is not valid.`, {
      hint: `Write it as OS/ARCHITECTURE[/VARIANT], e.g. ${DEFAULT_PLATFORM} or linux/arm64/v8.`,
    });
  }
  return { os: match[1], architecture: match[2], ...(match[3] === undefined ? {} : { variant: match[3] }) };
}

export function formatPlatform(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant]
    .filter((part) => part !== undefined)
    .join('/');
}

export async function resolveOci(
  source: string,
  options: ResolveOciOptions,
  ctx: SourceContext,
): Promise<OciResolvedSource> {
  const reference = parseOciReference(source, options.insecure ? { insecure: true } : {});
  const platform = parsePlatform(options.platform ?? DEFAULT_PLATFORM);
  const client = await createRegistryClient({
    reference,
    env: ctx.env,
    ...(options.credentials ? { credentials: options.credentials } : {}),
  });
  ctx.onProgress?.({ step: 'resolve', status: 'start', detail: `${source} (${formatPlatform(platform)})` });
  try {
    const resolved =
      options.kind === 'model'
        ? await resolveModel(client, source, reference, ctx.signal)
        : await resolveWith(client, source, reference, platform, ctx.signal);
    ctx.onProgress?.({
      step: 'resolve',
      status: 'ok',
      detail: `${source} -> ${resolved.pinned}: ${resolved.layers.length} layers, ${resolved.files.reduce((sum, file) => sum + file.size, 0)} bytes`,
    });
    return resolved;
  } catch (error) {
    if (!ctx.signal?.aborted) {
      ctx.onProgress?.({ step: 'resolve', status: 'fail', detail: client.redact((error as Error).message) });
    }
    throw error;
  }
}

async function resolveWith(
  client: RegistryClient,
  source: string,
  reference: OciReference,
  platform: Platform,
  signal: AbortSignal | undefined,
): Promise<OciResolvedSource> {
  const wanted = formatPlatform(platform);
  let document = await client.getManifest(reference.digest ?? reference.tag ?? 'latest', signal);
  let index: OciResolvedSource['index'];
  for (let depth = 0; isIndexMediaType(document.mediaType); depth++) {
    if (depth >= MAX_INDEX_DEPTH) {
      throw badImage(source, 'its indexes nest too deeply', 'Name the platform manifest by digest instead.');
    }
    const parsed = parseDocument(imageIndexSchema, document, source, 'image index');
    index ??= { mediaType: document.mediaType, digest: document.digest };
    const entry = pickPlatform(parsed.manifests, platform);
    if (entry === undefined) {
      const offered = parsed.manifests
        .filter((m) => m.platform !== undefined && !isAttestation(m))
        .map((m) => formatPlatform(m.platform as Platform));
      throw new ApertusError(
        'oci-platform-not-found',
        `${source} has no image for ${wanted}; it offers ${offered.length > 0 ? offered.join(', ') : 'no platforms'}.`,
        {
          hint: `Pick one of those platforms for the target hosts, or another tag that is built for ${wanted}.`,
        },
      );
    }
    document = await client.getManifest(entry.digest, signal);
    if (
      document.mediaType !== entry.mediaType &&
      !(isImageManifestMediaType(document.mediaType) && isImageManifestMediaType(entry.mediaType))
    ) {
      throw badImage(
        source,
        `the index says ${entry.digest} is ${entry.mediaType}, the registry serves ${document.mediaType}`,
      );
    }
  }

  const manifest = parseDocument(imageManifestSchema, document, source, 'image manifest');
  const config = checkBlobs(manifest, source);
  const configBytes = await client.getBlob(config.digest, { maxBytes: MAX_CONFIG_BYTES, signal });
  const imageConfig = parseConfig(configBytes, source);

  if (
    imageConfig.os !== platform.os ||
    imageConfig.architecture !== platform.architecture ||
    (platform.variant !== undefined && imageConfig.variant !== platform.variant)
  ) {
    const has = formatPlatform({
      os: imageConfig.os ?? '?',
      architecture: imageConfig.architecture ?? '?',
      ...(imageConfig.variant === undefined ? {} : { variant: imageConfig.variant }),
    });
    throw new ApertusError('oci-platform-mismatch', `${source} is an image for ${has}, not ${wanted}.`, {
      hint: `Use a tag built for ${wanted} (or a multi-platform tag), or set the platform to ${has} if the hosts run it.`,
    });
  }
  const diffIds = imageConfig.rootfs?.diff_ids;
  if (diffIds !== undefined && diffIds.length !== manifest.layers.length) {
    // docker load matches layers to diff_ids one to one; such an image would not load.
    throw badImage(
      source,
      `its manifest lists ${manifest.layers.length} layers and its config ${diffIds.length} diff_ids`,
    );
  }

  const labels = imageConfig.config?.Labels ?? {};
  const layers = manifest.layers.map(blobOf);
  const files = distinctFiles([config, ...layers]);
  const entrypoint = imageConfig.config?.Entrypoint ?? undefined;
  const cmd = imageConfig.config?.Cmd ?? undefined;
  const license = labels[LICENSES_LABEL]?.trim();
  const resolved: OciResolvedSource = {
    kind: 'oci',
    source,
    pinned: pinnedReference(reference, document.digest),
    revision: document.digest,
    reference,
    platform: formatPlatform({
      os: imageConfig.os ?? platform.os,
      architecture: imageConfig.architecture ?? platform.architecture,
      ...(imageConfig.variant === undefined ? {} : { variant: imageConfig.variant }),
    }),
    manifest: { mediaType: document.mediaType, digest: document.digest, size: document.bytes.length },
    config,
    layers,
    repoTag: repoTag(reference, document.digest),
    image: {
      env: imageConfig.config?.Env ?? [],
      labels,
      ...(entrypoint ? { entrypoint } : {}),
      ...(cmd ? { cmd } : {}),
    },
    files,
  };
  if (index !== undefined) resolved.index = index;
  if (license) resolved.license = license;
  return resolved;
}

/**
 * A ModelPack model artifact (modelpack/model-spec docs/spec.md): a manifest whose
 * artifactType (or config type) says model, with uncompressed layers this version can place.
 * Its manifest is stored as pulled, so the bundle holds the registry's digest.
 */
async function resolveModel(
  client: RegistryClient,
  source: string,
  reference: OciReference,
  signal: AbortSignal | undefined,
): Promise<OciResolvedSource> {
  const document = await client.getManifest(reference.digest ?? reference.tag ?? 'latest', signal);
  if (isIndexMediaType(document.mediaType)) {
    throw notAModel(source, 'it is an image index');
  }
  const manifest = parseDocument(imageManifestSchema, document, source, 'model manifest');
  const raw = JSON.parse(document.bytes.toString('utf8')) as { artifactType?: unknown };
  if (raw.artifactType !== MODELPACK.artifactType || manifest.config.mediaType !== MODELPACK.config) {
    throw notAModel(source, `its config is of type ${manifest.config.mediaType}`);
  }
  for (const blob of [manifest.config, ...manifest.layers]) {
    if (!/^sha256:[0-9a-f]{64}$/.test(blob.digest))
      throw badImage(source, `blob ${blob.digest} is not addressed by sha256`);
  }
  const unsupported = manifest.layers.find((layer) => !isModelPackLayer(layer.mediaType));
  if (unsupported !== undefined) {
    throw badImage(
      source,
      `layer ${unsupported.digest} is of type ${unsupported.mediaType}`,
      'Only uncompressed ModelPack layers (.raw or .tar) can be bundled; push the model with raw layers (modctl and apertus mirror do).',
    );
  }
  const config = blobOf(manifest.config);
  const layers = manifest.layers.map(blobOf);
  const files = distinctFiles([config, ...layers]);
  const modelConfig = JSON.parse(
    (await client.getBlob(config.digest, { maxBytes: MAX_CONFIG_BYTES, signal })).toString('utf8'),
  ) as { descriptor?: { licenses?: unknown } };
  const licenses = modelConfig.descriptor?.licenses;
  const resolved: OciResolvedSource = {
    kind: 'oci',
    source,
    pinned: pinnedReference(reference, document.digest),
    revision: document.digest,
    reference,
    platform: 'model',
    manifest: { mediaType: document.mediaType, digest: document.digest, size: document.bytes.length },
    config,
    layers,
    repoTag: repoTag(reference, document.digest),
    image: { env: [], labels: {} },
    files,
  };
  if (Array.isArray(licenses) && typeof licenses[0] === 'string') resolved.license = licenses.join(' AND ');
  return resolved;
}

function notAModel(source: string, why: string): ApertusError {
  return new ApertusError('oci-not-a-model', `${source} is not a ModelPack model artifact: ${why}.`, {
    hint: `A model from a registry must be a ModelPack artifact (artifactType ${MODELPACK.artifactType}), as \`apertus mirror\` pushes them; use kind: image for container images.`,
  });
}

/**
 * The index entry for `platform` (runtime-facts §5.1 step 5). Attestation manifests
 * (`unknown/unknown`, `vnd.docker.reference.type`) are never picked. Without a wanted
 * variant, an entry without variant (or arm64's default v8) comes first.
 */
export function pickPlatform(manifests: ImageDescriptor[], platform: Platform): ImageDescriptor | undefined {
  const candidates = manifests.filter(
    (entry) =>
      !isAttestation(entry) &&
      (isImageManifestMediaType(entry.mediaType) || isIndexMediaType(entry.mediaType)) &&
      entry.platform?.os === platform.os &&
      entry.platform.architecture === platform.architecture,
  );
  if (platform.variant !== undefined) {
    return (
      candidates.find((entry) => entry.platform?.variant === platform.variant) ??
      (platform.architecture === 'arm64' && platform.variant === 'v8'
        ? candidates.find((entry) => entry.platform?.variant === undefined)
        : undefined)
    );
  }
  const preferred = (entry: ImageDescriptor) => {
    const variant = entry.platform?.variant;
    return variant === undefined || (platform.architecture === 'arm64' && variant === 'v8');
  };
  return candidates.find(preferred) ?? candidates[0];
}

function isAttestation(entry: ImageDescriptor): boolean {
  return (
    entry.annotations?.[REFERENCE_TYPE_ANNOTATION] !== undefined ||
    (entry.platform?.os === 'unknown' && entry.platform.architecture === 'unknown')
  );
}

function parseDocument<T>(schema: z.ZodType<T>, document: RegistryManifest, source: string, what: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(document.bytes.toString('utf8'));
  } catch {
    throw badImage(source, `its ${what} ${document.digest} is not JSON`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw badImage(
      source,
      `its ${what} ${document.digest} is malformed (${issue?.path.join('.') || 'document'}: ${issue?.message ?? 'invalid'})`,
    );
  }
  return parsed.data;
}

function parseConfig(bytes: Buffer, source: string): ImageConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw badImage(source, 'its image config is not JSON');
  }
  const parsed = imageConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw badImage(
      source,
      `its image config is malformed (${issue?.path.join('.') || 'document'}: ${issue?.message ?? 'invalid'})`,
    );
  }
  return parsed.data;
}

/** Checks the manifest names an image whose blobs docker and podman can load; returns the config. */
function checkBlobs(manifest: ImageManifest, source: string): OciImageBlob {
  if (!isImageConfigMediaType(manifest.config.mediaType)) {
    throw new ApertusError(
      'oci-not-an-image',
      `${source} is not a container image: its config is of type ${manifest.config.mediaType}.`,
      {
        hint: 'Name a container image; other OCI artifacts (Helm charts, models as OCI artifacts) are not image components.',
      },
    );
  }
  for (const blob of [manifest.config, ...manifest.layers]) {
    if (!/^sha256:[0-9a-f]{64}$/.test(blob.digest)) {
      throw badImage(
        source,
        `blob ${blob.digest} is not addressed by sha256`,
        'Push the image again with sha256 digests (the default).',
      );
    }
  }
  for (const layer of manifest.layers) {
    if (!isLayerMediaType(layer.mediaType) || (layer.urls !== undefined && layer.urls.length > 0)) {
      throw badImage(
        source,
        `layer ${layer.digest} is of type ${layer.mediaType}${layer.urls?.length ? ' and lives outside the registry' : ''}`,
        'Only tar layers (plain, gzip or zstd) that the registry serves can be bundled; Windows foreign layers cannot.',
      );
    }
  }
  return blobOf(manifest.config);
}

/** The config, then each distinct layer: path `blobs/sha256/<hex>`, as in the image archive on the host. */
function distinctFiles(blobs: OciImageBlob[]): OciResolvedFile[] {
  const files: OciResolvedFile[] = [];
  const seen = new Set<string>();
  for (const blob of blobs) {
    if (seen.has(blob.digest)) continue;
    seen.add(blob.digest);
    files.push({
      path: `blobs/sha256/${blob.digest.slice('sha256:'.length)}`,
      size: blob.size,
      digest: blob.digest,
      mediaType: blob.mediaType,
    });
  }
  return files;
}

function blobOf(descriptor: ImageDescriptor): OciImageBlob {
  return { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size };
}

function badImage(source: string, why: string, hint?: string): ApertusError {
  return new ApertusError('oci-bad-image', `${source} cannot be bundled: ${why}.`, {
    kind: 'operation',
    hint: hint ?? 'Check the image with `skopeo inspect --raw docker://…`; push it again if it is damaged.',
  });
}

/** Type guard for a ResolvedSource that came from resolveOci (possibly through JSON). */
export function isOciResolvedSource(resolved: ResolvedSource): resolved is OciResolvedSource {
  const candidate = resolved as Partial<OciResolvedSource>;
  return (
    candidate.kind === 'oci' &&
    typeof candidate.reference === 'object' &&
    typeof candidate.manifest?.digest === 'string' &&
    typeof candidate.config?.digest === 'string' &&
    Array.isArray(candidate.layers)
  );
}
