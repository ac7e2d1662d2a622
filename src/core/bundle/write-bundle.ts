/**
 * Writes a bundle (DESIGN.md section 2) as one deterministic tar, in a single pass
 * over the sources: each blob is hashed while it is copied into the tar under a
 * placeholder name, and its header is rewritten with the digest afterwards. Model
 * weights are read once, never staged, and no temporary files are made: tar layers
 * are generated straight into the bundle the same way.
 *
 * With `split`, the same bytes go straight into `.part-NNN` files instead (see
 * part-writer.ts): joined, the parts are byte-identical to the unsplit tar.
 *
 * Entry order, fixed for a given plan: oci-layout, blobs/, blobs/sha256/, the blobs in
 * plan order (each component's layers, then its manifest; then the recipe, the config
 * and the bundle manifest), index.json, SHA256SUMS, SHA256SUMS.minisig.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { ApertusError } from '../errors.js';
import { adapterBaseAnnotations, assertAdapterBase } from '../layout/adapter-base.js';
import { bundleConfigSchema, CURRENT_FORMAT_VERSION, describeIssues } from '../layout/bundle-schemas.js';
import { canonicalJsonBytes } from '../layout/canonical-json.js';
import { formatChecksums } from '../layout/checksums.js';
import {
  type Blob,
  blobOf,
  bundleIndex,
  bundleManifest,
  componentManifest,
  EMPTY_CONFIG,
  fileLayerDescriptor,
  sha256Digest,
  tarLayerDescriptor,
} from '../layout/manifests.js';
import { ANNOTATION, MEDIA_TYPE } from '../layout/media-types.js';
import { modelConfigBlob, modelFileLayerDescriptor, modelManifest } from '../layout/model-pack.js';
import {
  BLOBS_DIR,
  BLOBS_SHA256_DIR,
  blobPath,
  bundleFileName,
  CHECKSUMS_FILE,
  CLI_DIR,
  confinedRelativePath,
  deltaBundleFileName,
  INDEX_FILE,
  isDigest,
  OCI_LAYOUT_CONTENT,
  OCI_LAYOUT_FILE,
  SIGNATURE_FILE,
} from '../layout/names.js';
import {
  fileChunks,
  openTarFileOutput,
  planTarArchive,
  type TarArchivePlan,
  TarFileWriter,
  type TarMode,
  type TarOutput,
  tarArchiveChunks,
} from '../layout/tar-writer.js';
import type {
  AdapterBase,
  BundleConfig,
  ComponentKind,
  Descriptor,
  ServiceSpec,
  VerifySpec,
} from '../layout/types.js';
import { noProgress, type RunOptions } from '../progress.js';
import { bundleSbomBlob } from '../sbom/bundle-sbom.js';
import type { SecretKey } from '../sign/keys.js';
import { sign } from '../sign/minisign.js';
import type { CliFiles } from './cli-files.js';
import { type DeltaWrite, digestOfFile, withDelta } from './delta-bundle.js';
import { describeModel } from './model-description.js';
import { SplitTarOutput, type WrittenSplit } from './part-writer.js';

/** One file, materialised at `title` inside the component directory on the host. */
export interface PlannedFileLayer {
  type: 'file';
  /** Absolute path of the file on this machine; read in place, never copied first. */
  source: string;
  /** Relative path inside the component ('model/model.gguf'). */
  title: string;
  mode?: TarMode;
}

/** Many small files as one uncompressed tar, extracted into the component directory. */
export interface PlannedTarLayer {
  type: 'tar';
  /** Names the layer (its title annotation), e.g. 'server'. */
  name: string;
  entries: Array<{ source: string; path: string; mode: TarMode }>;
}

export type PlannedLayer = PlannedFileLayer | PlannedTarLayer;

export interface PlannedComponent {
  name: string;
  kind: ComponentKind;
  provenance: BundleConfig['components'][number]['provenance'];
  /** Kind 'adapter': the base model component it is bound to, checked once both are written. */
  base?: AdapterBase;
  layers: PlannedLayer[];
  /** Kinds 'image' and 'model' (a ModelPack artifact from oci:), with `layers` empty: stored as pulled (src/core/sources/oci). */
  image?: PlannedImage;
}

/**
 * A container image stored as pulled: its config and layers are ordinary blobs (shared with
 * every other component and image that has them), and its manifest, byte for byte, is the
 * component manifest, so the image keeps its registry digest and the bundle's index.json
 * names a real image. The host builds a loadable archive from the blob store
 * (src/core/sources/oci/image-archive.ts).
 */
export interface PlannedImage {
  manifest: { source: string; mediaType: string; digest: string; size: number };
  /** The config, then each distinct layer; each is checked against its digest while it is written. */
  blobs: Array<{ source: string; digest: string; size: number }>;
}

/** Everything a bundle holds, resolved to files on this machine (made by the planner). */
export interface BundleWritePlan {
  name: string;
  version: string;
  description: string;
  recipe: { fileName: string; bytes: Uint8Array };
  components: PlannedComponent[];
  services: ServiceSpec[];
  verify: VerifySpec;
  /** diskBytes, when left out, is computed: every blob once plus the extracted tar layers. */
  requirements: Partial<BundleConfig['requirements']>;
}

export interface WriteBundleOptions extends RunOptions {
  outDir: string;
  /** Signs SHA256SUMS; without it the bundle has no SHA256SUMS.minisig. */
  secretKey?: SecretKey | undefined;
  /** Writes the tar as parts of `partSize` bytes plus an index (DESIGN.md section 2), never as one file. */
  split?: { partSize: number } | undefined;
  /** Writes a delta (`--since`): layer blobs in `omit` are left out and listed in the config. */
  delta?: DeltaWrite | undefined;
  /** The CLI to carry under apertus/ (collectCliFiles); covered by SHA256SUMS like the rest. */
  cli?: CliFiles | undefined;
}

export interface WrittenBundle {
  /** The tar; for a split bundle, its index file, which openBundle, verify and install take. */
  path: string;
  manifestDigest: string;
  /** Bytes of the tar (of all parts together, when split). */
  size: number;
  /** Distinct blobs stored. */
  blobs: number;
  /** The parts and index, when split. */
  split: WrittenSplit | null;
  /** A delta's left-out layer blobs and their bytes; absent for a full bundle. */
  omitted?: { blobs: number; bytes: number };
}

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;
const PLACEHOLDER_DIGEST = `sha256:${'0'.repeat(64)}`;
/** Progress events at most every this many bytes, so a 140 GB bundle makes a few thousand. */
const PROGRESS_EVERY = 32 << 20;

type PreparedLayer =
  | { type: 'file'; layer: PlannedFileLayer; size: number }
  | { type: 'tar'; layer: PlannedTarLayer; archive: TarArchivePlan }
  | { type: 'blob'; source: string; digest: string; size: number };

export async function writeBundle(
  plan: BundleWritePlan,
  options: WriteBundleOptions,
): Promise<WrittenBundle> {
  const { signal } = options;
  const onProgress = options.onProgress ?? noProgress;
  const prepared = await prepareLayers(plan);

  const outDir = resolve(options.outDir);
  await mkdir(outDir, { recursive: true });
  const tarFileName =
    options.delta === undefined
      ? bundleFileName(plan.name, plan.version)
      : deltaBundleFileName(plan.name, plan.version, options.delta.base?.version ?? null);
  const path = join(outDir, tarFileName);
  // Written under another name and renamed when complete: an interrupted bundle never looks finished.
  const partialPath = `${path}.partial`;
  const splitOutput =
    options.split === undefined
      ? undefined
      : SplitTarOutput.create({ outDir, tarFileName, partSize: options.split.partSize });

  const sourceDigests = new Map<string, string>();
  const stored = new Map<string, number>();
  /** Layer blobs a delta leaves out (digest -> size). */
  const omitted = new Map<string, number>();
  const total = totalBytes(prepared) + (options.cli?.bytes ?? 0);
  let done = 0;
  let reported = 0;
  const advance = (bytes: number): void => {
    done += bytes;
    if (done - reported >= PROGRESS_EVERY || done === total) {
      reported = done;
      onProgress({ step: 'bundle.write', status: 'info', bytes: { done, total } });
    }
  };

  onProgress({
    step: 'bundle.write',
    status: 'info',
    detail:
      options.split === undefined
        ? `writing ${path}`
        : `writing ${path} as parts of ${options.split.partSize} bytes`,
    bytes: { done: 0, total },
  });
  const output: TarOutput = splitOutput ?? (await openTarFileOutput(partialPath));
  const writer = new TarFileWriter(output);
  try {
    await writer.writeEntry(
      { path: OCI_LAYOUT_FILE, type: 'file', size: OCI_LAYOUT_CONTENT.length, mode: 0o644 },
      Buffer.from(OCI_LAYOUT_CONTENT),
    );
    await writer.writeEntry({ path: BLOBS_DIR, type: 'directory', size: 0, mode: 0o755 });
    await writer.writeEntry({ path: BLOBS_SHA256_DIR, type: 'directory', size: 0, mode: 0o755 });

    const storeBytes = async (blob: Blob): Promise<Descriptor> => {
      if (!stored.has(blob.descriptor.digest)) {
        await writer.writeEntry(blobEntry(blob.descriptor.digest, blob.bytes.length), blob.bytes);
        stored.set(blob.descriptor.digest, blob.bytes.length);
      }
      return blob.descriptor;
    };

    /** Copies `size` bytes into the tar while hashing them; returns their digest. */
    const storeStream = async (size: number, chunks: AsyncIterable<Uint8Array>): Promise<string> => {
      const hash = createHash('sha256');
      const entry = await writer.writeEntry(
        blobEntry(PLACEHOLDER_DIGEST, size),
        chunks,
        (chunk) => {
          hash.update(chunk);
          advance(chunk.length);
        },
        { provisional: true },
      );
      const digest = `sha256:${hash.digest('hex')}`;
      if (stored.has(digest) || omitted.has(digest)) await writer.truncate(entry.headerOffset);
      else if (options.delta?.omit.has(digest)) {
        await writer.truncate(entry.headerOffset);
        omitted.set(digest, size);
      } else {
        await writer.renameEntry(entry, blobEntry(digest, size));
        stored.set(digest, size);
      }
      return digest;
    };

    /** The CLI's directories, then its files in path order; returns their checksums. */
    const writeCli = async (cli: CliFiles): Promise<Array<{ path: string; digest: string }>> => {
      const directories = new Set<string>([CLI_DIR]);
      for (const file of cli.files) {
        const parts = file.path.split('/').slice(0, -1);
        for (let i = 1; i <= parts.length; i++) directories.add(`${CLI_DIR}/${parts.slice(0, i).join('/')}`);
      }
      for (const dir of [...directories].sort()) {
        await writer.writeEntry({ path: dir, type: 'directory', size: 0, mode: 0o755 });
      }
      const sums: Array<{ path: string; digest: string }> = [];
      for (const file of cli.files) {
        signal?.throwIfAborted();
        const hash = createHash('sha256');
        const path = `${CLI_DIR}/${file.path}`;
        await writer.writeEntry(
          { path, type: 'file', size: file.size, mode: file.mode },
          fileChunks(file.source, file.size, signal),
          (chunk) => {
            hash.update(chunk);
            advance(chunk.length);
          },
        );
        sums.push({ path, digest: `sha256:${hash.digest('hex')}` });
      }
      return sums;
    };

    const components: BundleConfig['components'] = [];
    const lastModelPackIndex = plan.components.findLastIndex((c) => isModelPackKind(c.kind));
    /** Each component's layers as written, for the SBOM. */
    const writtenLayers: Descriptor[][] = [];
    for (const [index, component] of plan.components.entries()) {
      const layers: Descriptor[] = [];
      for (const item of prepared[index] ?? []) {
        signal?.throwIfAborted();
        if (item.type === 'blob') {
          // Known digest: a layer another image (or component) already stored is not read again.
          if (stored.has(item.digest) || omitted.has(item.digest)) {
            advance(item.size);
            continue;
          }
          if (options.delta?.omit.has(item.digest)) {
            omitted.set(item.digest, item.size);
            advance(item.size);
            continue;
          }
          const digest = await storeStream(item.size, fileChunks(item.source, item.size, signal));
          if (digest !== item.digest) throw changedSource(component.name, item.source, item.digest, digest);
        } else if (item.type === 'file') {
          const { layer, size } = item;
          let digest = sourceDigests.get(layer.source);
          if (digest === undefined) {
            if (options.delta !== undefined) {
              // Hashed first, so a blob the base holds is read once and never written.
              const known = await digestOfFile(layer.source, size, signal);
              if (options.delta.omit.has(known)) {
                omitted.set(known, size);
                digest = known;
                advance(size);
              }
            }
            digest ??= await storeStream(size, fileChunks(layer.source, size, signal));
            sourceDigests.set(layer.source, digest);
          } else advance(size);
          layers.push(
            isModelPackKind(component.kind)
              ? modelFileLayerDescriptor(digest, size, layer.title, layer.mode)
              : fileLayerDescriptor(digest, size, layer.title, layer.mode),
          );
        } else {
          const digest = await storeStream(item.archive.size, tarArchiveChunks(item.archive, signal));
          layers.push(tarLayerDescriptor(digest, item.archive.size, item.layer.name));
        }
      }
      let manifest: Descriptor;
      if (component.image !== undefined) {
        const { source, mediaType, digest, size } = component.image.manifest;
        const bytes = await readFile(source);
        if (sha256Digest(bytes) !== digest || bytes.length !== size) {
          throw changedSource(component.name, source, digest, sha256Digest(bytes));
        }
        manifest = await storeBytes({ descriptor: { mediaType, digest, size }, bytes });
      } else if (isModelPackKind(component.kind)) {
        const files = component.layers.filter((layer) => layer.type === 'file');
        const description = await describeModel(component, files, plan.version);
        const config = await storeBytes(modelConfigBlob(description, layers));
        const base = component.base;
        const baseSource = plan.components.find((c) => c.name === base?.component)?.provenance.source;
        manifest = await storeBytes(
          modelManifest(
            component,
            config,
            layers,
            base === undefined ? {} : adapterBaseAnnotations(base, baseSource ?? ''),
          ),
        );
      } else {
        await storeBytes(EMPTY_CONFIG);
        manifest = await storeBytes(componentManifest(component, layers));
      }
      components.push({
        name: component.name,
        kind: component.kind,
        manifest,
        provenance: component.provenance,
        ...(component.base === undefined ? {} : { base: component.base }),
      });
      writtenLayers.push(layers);
      // Once every model and adapter is hashed, an adapter whose base is missing or different
      // is refused, before the rest is written (the partial file is removed).
      if (index === lastModelPackIndex) assertAdapterBases(components, writtenLayers);
    }

    const recipe = await storeBytes(
      blobOf(MEDIA_TYPE.recipe, Buffer.from(plan.recipe.bytes), {
        annotations: { [ANNOTATION.title]: plan.recipe.fileName },
      }),
    );
    const config = withDelta(
      buildConfig(plan, components, recipe, diskBytes(new Map([...stored, ...omitted]), prepared)),
      options.delta,
      omitted,
    );
    const configDescriptor = await storeBytes(blobOf(MEDIA_TYPE.bundleConfig, canonicalJsonBytes(config)));
    const sbom = await storeBytes(await bundleSbomBlob(plan, components, writtenLayers, recipe, options.cli));
    const manifest = await storeBytes(bundleManifest(plan, configDescriptor, recipe, [sbom]));

    const indexBytes = bundleIndex(
      { name: plan.name, version: plan.version, manifest },
      components.map((component) => ({ name: component.name, manifest: component.manifest })),
    );
    await writer.writeEntry(
      { path: INDEX_FILE, type: 'file', size: indexBytes.length, mode: 0o644 },
      indexBytes,
    );
    const cliSums = options.cli === undefined ? [] : await writeCli(options.cli);

    const sums = Buffer.from(
      formatChecksums([
        { path: OCI_LAYOUT_FILE, digest: sha256Digest(Buffer.from(OCI_LAYOUT_CONTENT)) },
        { path: INDEX_FILE, digest: sha256Digest(indexBytes) },
        ...[...stored.keys()].map((digest) => ({ path: blobPath(digest), digest })),
        ...cliSums,
      ]),
    );
    await writer.writeEntry({ path: CHECKSUMS_FILE, type: 'file', size: sums.length, mode: 0o644 }, sums);

    if (options.secretKey !== undefined) {
      // No timestamp: the same plan and key must give the same bytes. The trusted
      // comment binds the signature to this bundle's root of trust.
      const signature = Buffer.from(
        sign(sums, options.secretKey, {
          trustedComment: `file:${CHECKSUMS_FILE}\tbundle:${plan.name}:${plan.version}\tmanifest:${manifest.digest}\thashed`,
          untrustedComment: `signature from apertus secret key ${options.secretKey.keyId}`,
        }),
      );
      await writer.writeEntry(
        { path: SIGNATURE_FILE, type: 'file', size: signature.length, mode: 0o644 },
        signature,
      );
      onProgress({
        step: 'bundle.sign',
        status: 'info',
        detail: `signed with key ${options.secretKey.keyId}`,
      });
    }

    const size = await writer.finish();
    const left =
      options.delta === undefined
        ? {}
        : { omitted: { blobs: omitted.size, bytes: [...omitted.values()].reduce((a, b) => a + b, 0) } };
    if (splitOutput !== undefined) {
      const split = splitOutput.result;
      return {
        path: split.indexPath,
        manifestDigest: manifest.digest,
        size,
        blobs: stored.size,
        split,
        ...left,
      };
    }
    await rename(partialPath, path);
    return { path, manifestDigest: manifest.digest, size, blobs: stored.size, split: null, ...left };
  } catch (error) {
    await writer.close();
    if (splitOutput === undefined) await rm(partialPath, { force: true });
    throw error;
  }
}

function assertAdapterBases(components: BundleConfig['components'], layers: Descriptor[][]): void {
  const candidates = components.map((c, i) => ({
    name: c.name,
    kind: c.kind,
    revision: c.provenance.revision,
    layers: layers[i] ?? [],
  }));
  for (const component of components) {
    if (component.base !== undefined)
      assertAdapterBase({ name: component.name, base: component.base }, candidates, 'the recipe');
  }
}

/** Models and adapters are ModelPack artifacts: one raw layer per file, a model config. */
function isModelPackKind(kind: ComponentKind): boolean {
  return kind === 'model' || kind === 'adapter';
}

function changedSource(component: string, source: string, expected: string, actual: string): ApertusError {
  return new ApertusError(
    'bundle-source-changed',
    `component "${component}": ${source} no longer matches ${expected} (it hashes to ${actual})`,
    {
      kind: 'operation',
      hint: 'The download cache changed after the fetch; run the bundle again to fetch it anew.',
    },
  );
}

function blobEntry(digest: string, size: number) {
  return { path: blobPath(digest), type: 'file', size, mode: 0o644 } as const;
}

function buildConfig(
  plan: BundleWritePlan,
  components: BundleConfig['components'],
  recipe: Descriptor,
  computedDiskBytes: number,
): BundleConfig {
  const { diskBytes, ...requirements } = plan.requirements;
  const config = {
    formatVersion: CURRENT_FORMAT_VERSION,
    name: plan.name,
    version: plan.version,
    description: plan.description,
    recipe: { digest: recipe.digest, path: plan.recipe.fileName },
    components,
    services: plan.services,
    verify: plan.verify,
    requirements: { ...requirements, diskBytes: diskBytes ?? computedDiskBytes },
  };
  // Checked with the schema the reader uses, so every bundle written can be read back.
  const parsed = bundleConfigSchema.safeParse(config);
  if (!parsed.success) {
    throw new ApertusError(
      'bundle-bad-plan',
      `the bundle config for ${plan.name} is invalid: ${describeIssues(parsed.error)}`,
      {
        hint: 'Fix the recipe fields named above (services, verify, requirements), then bundle again.',
      },
    );
  }
  return parsed.data;
}

/** Host disk: one copy of each blob in the content store, plus tar layers extracted next to it. */
function diskBytes(stored: Map<string, number>, prepared: PreparedLayer[][]): number {
  let bytes = 0;
  for (const size of stored.values()) bytes += size;
  for (const layer of prepared.flat()) {
    if (layer.type === 'tar') for (const member of layer.archive.members) bytes += member.size;
  }
  return bytes;
}

function totalBytes(prepared: PreparedLayer[][]): number {
  let bytes = 0;
  for (const layer of prepared.flat()) bytes += layer.type === 'tar' ? layer.archive.size : layer.size;
  return bytes;
}

/** Validates the plan and sizes every layer before a byte is written. */
async function prepareLayers(plan: BundleWritePlan): Promise<PreparedLayer[][]> {
  checkName(plan.name, 'bundle name');
  checkName(plan.version, 'bundle version');
  const recipeTitle = confinedRelativePath(plan.recipe.fileName);
  if (recipeTitle === undefined || recipeTitle.includes('/')) {
    throw badPlan(
      `recipe file name "${plan.recipe.fileName}" is not a plain file name`,
      'Pass the recipe file name without directories.',
    );
  }
  const names = new Set<string>();
  const prepared: PreparedLayer[][] = [];
  for (const component of plan.components) {
    checkName(component.name, 'component name');
    if (names.has(component.name)) {
      throw badPlan(`component "${component.name}" appears twice`, 'Give every component its own name.');
    }
    names.add(component.name);
    const titles = new Set<string>();
    const layers: PreparedLayer[] = [];
    if (component.image !== undefined) {
      const where = `component "${component.name}"`;
      if ((component.kind !== 'image' && component.kind !== 'model') || component.layers.length > 0) {
        throw badPlan(
          `${where}: a component stored as pulled needs kind 'image' or 'model' and no other layers`,
          'Plan image and model components from a fetched oci: source.',
        );
      }
      for (const blob of [component.image.manifest, ...component.image.blobs]) {
        if (!isDigest(blob.digest))
          throw badPlan(
            `${where}: ${blob.digest} is not a sha256 digest`,
            'Image blobs are sha256-addressed.',
          );
        const size = await sourceSize(blob.source, where);
        if (size !== blob.size) {
          throw new ApertusError(
            'bundle-source-changed',
            `${where}: ${blob.source} is ${size} bytes, not ${blob.size}`,
            {
              kind: 'operation',
              hint: 'The download cache changed after the fetch; run the bundle again to fetch it anew.',
            },
          );
        }
      }
      for (const blob of component.image.blobs) layers.push({ type: 'blob', ...blob });
      prepared.push(layers);
      continue;
    }
    for (const layer of component.layers) {
      if (layer.type === 'file') {
        const where = `component "${component.name}", file "${layer.title}"`;
        if (confinedRelativePath(layer.title) !== layer.title) {
          throw badPlan(
            `${where}: the title is not a plain relative path`,
            'Use a relative path without "..", "." or empty components.',
          );
        }
        if (titles.has(layer.title))
          throw badPlan(`${where}: listed twice`, 'Each path may appear once in a component.');
        titles.add(layer.title);
        if (layer.mode !== undefined && layer.mode !== 0o644 && layer.mode !== 0o755) {
          throw badPlan(`${where}: mode must be 0644 or 0755`, 'Pass 0o644 or 0o755.');
        }
        layers.push({ type: 'file', layer, size: await sourceSize(layer.source, where) });
      } else {
        const where = `component "${component.name}", tar layer "${layer.name}"`;
        if (isModelPackKind(component.kind)) {
          throw badPlan(`${where}: a model holds one file per layer`, 'Plan model files as file layers.');
        }
        for (const entry of layer.entries) {
          if (!isAbsolute(entry.source))
            throw badPlan(
              `${where}: ${entry.source} is not an absolute path`,
              'Resolve sources to absolute paths in the planner.',
            );
        }
        layers.push({ type: 'tar', layer, archive: await planTarArchive(layer.entries, where) });
      }
    }
    prepared.push(layers);
  }
  return prepared;
}

async function sourceSize(source: string, where: string): Promise<number> {
  if (!isAbsolute(source))
    throw badPlan(
      `${where}: ${source} is not an absolute path`,
      'Resolve sources to absolute paths in the planner.',
    );
  const stats = await stat(source).catch((error: unknown) => {
    throw new ApertusError('bundle-bad-source', `${where}: cannot read ${source}`, {
      hint: 'Check that the file exists and is readable, or fix the recipe that names it.',
      cause: error,
    });
  });
  if (!stats.isFile()) {
    throw new ApertusError('bundle-bad-source', `${where}: ${source} is not a regular file`, {
      hint: 'File layers hold one regular file each.',
    });
  }
  return stats.size;
}

function checkName(value: string, what: string): void {
  if (!NAME_PATTERN.test(value)) {
    throw badPlan(
      `${what} "${value}" may hold only letters, digits, '.', '_', '+' and '-'`,
      `Rename it; the ${what} becomes part of file names.`,
    );
  }
}

function badPlan(message: string, hint: string): ApertusError {
  return new ApertusError('bundle-bad-plan', message, { hint });
}
