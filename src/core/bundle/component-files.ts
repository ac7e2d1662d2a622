/**
 * A component's files as the host check sees them, whatever holds them: a bundle's layers
 * (read through its BundleReader), a recipe's file: source on this disk, or a recipe's hf:
 * source in the Hugging Face cache or on the Hub. Every file reads by byte range, so a
 * model's shape and weight bytes come from config.json and headers, never the weights.
 * Image (oci:) and wheels (pip:) components of a recipe are not resolved here: their files
 * are known only once bundled, and no model is read from them.
 */
import path from 'node:path';
import { ApertusError } from '../errors.js';
import type { RangeReader } from '../gpu/byte-range.js';
import type { BundleEntry, BundleReader } from '../layout/bundle-reader.js';
import type { LoadedBundle } from '../layout/load-bundle.js';
import { layerFilePath } from '../layout/media-types.js';
import { blobPath } from '../layout/names.js';
import type { ComponentKind } from '../layout/types.js';
import { PROJECT_ROOT } from '../project-root.js';
import { needsRuntimeComponent } from '../runtimes/registry.js';
import { collectRuntimeFiles } from '../runtimes/runtime-files.js';
import { fileRange, listLocalSource } from '../sources/file/local-files.js';
import { openHfSnapshot } from '../sources/hf/hf-snapshot.js';
import type { SourceContext } from '../sources/types.js';
import type { LoadedRecipe } from '../spec/load-recipe.js';
import type { RecipeComponent } from '../spec/recipe-schema.js';

export interface ComponentFile {
  /** Path inside the component, '/'-separated: the layer title in a bundle. */
  path: string;
  size: number;
  /** Reads bytes of the file; absent when they are not at hand (a delta bundle left them out). */
  read?: RangeReader;
}

export interface ComponentView {
  name: string;
  kind: ComponentKind;
  files: ComponentFile[];
  /** Bytes the component adds to an install; undefined when only bundling will tell. */
  bytes: number | undefined;
  /** How the bytes were counted, or why they were not, for the disk check's detail. */
  note?: string;
  /** The listing may lack files of the component: the HF cache holds what was downloaded. */
  partial: boolean;
  /** The error for a file the component lacks, which `why` needs; its hint says how to supply it. */
  missing(path: string, why: string): ApertusError;
}

export interface RecipeViewOptions {
  /** HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE, HF_ENDPOINT and HF_TOKEN are read from here. */
  env: SourceContext['env'];
  /** The Hub's base URL; overrides HF_ENDPOINT. */
  hubUrl?: string | undefined;
  signal?: AbortSignal | undefined;
}

const sum = (files: readonly { size: number }[]) => files.reduce((total, f) => total + f.size, 0);

/** The components of a loaded bundle; files are its titled layers. */
export function bundleComponentViews(reader: BundleReader, bundle: LoadedBundle): ComponentView[] {
  const hint = `Run \`apertus verify ${reader.path}\`, then copy the bundle again or rebuild it from its recipe.`;
  return bundle.components.map((component) => {
    const files: ComponentFile[] = [];
    for (const layer of component.layers) {
      const title = layerFilePath(layer);
      if (title === undefined) continue;
      // A delta leaves out layers the host holds from the base release: listed, not readable.
      if (bundle.omitted.has(layer.digest)) {
        files.push({ path: title, size: layer.size });
        continue;
      }
      const entryOf = (): BundleEntry => {
        const entry = reader.get(blobPath(layer.digest));
        if (entry) return entry;
        throw new ApertusError('bundle-invalid', `${reader.path} lacks blob ${layer.digest} (${title}).`, {
          hint,
        });
      };
      files.push({ path: title, size: layer.size, read: entryRange(reader, entryOf) });
    }
    return {
      name: component.name,
      kind: component.kind,
      files,
      bytes: component.layers.reduce((total, l) => total + l.size, 0),
      partial: false,
      missing: (file, why) =>
        new ApertusError(
          'bundle-invalid',
          `Component ${component.name} of ${reader.path} holds no ${file}, which ${why}.`,
          { hint },
        ),
    };
  });
}

function entryRange(reader: BundleReader, entryOf: () => BundleEntry): RangeReader {
  return async (offset, length) => {
    const entry = entryOf();
    const end = Math.min(entry.size, offset + length);
    if (end <= offset) return Buffer.alloc(0);
    const chunks: Buffer[] = [];
    for await (const chunk of reader.createReadStream(entry, { start: offset, end: end - 1 }))
      chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  };
}

/**
 * The components of a recipe, each source resolved as `bundle` resolves it (file: by the
 * same listing; hf: to a commit), plus the runtime component `bundle` would add.
 */
export async function recipeComponentViews(
  loaded: LoadedRecipe,
  options: RecipeViewOptions,
): Promise<ComponentView[]> {
  const views: ComponentView[] = [];
  for (const spec of loaded.recipe.components) {
    options.signal?.throwIfAborted();
    if (spec.kind === 'image' || spec.kind === 'wheels') views.push(unresolvedView(spec));
    else if (spec.source.startsWith('hf:')) views.push(await hfView(spec, options));
    else views.push(await localView(spec, loaded));
  }
  if (needsRuntimeComponent(loaded.recipe.services)) views.push(await runtimeView());
  return views;
}

/** A local directory or file as one component (`check --model`): links followed, as in an HF snapshot. */
export function directoryView(
  name: string,
  root: string,
  files: readonly { path: string; size: number }[],
): ComponentView {
  return {
    name,
    kind: 'model',
    files: files.map((f) => ({ ...f, read: fileRange(path.join(root, f.path)) })),
    bytes: sum(files),
    partial: false,
    missing: (file, why) =>
      new ApertusError('model-file-missing', `${root} holds no ${file}, which ${why}.`, {
        hint: 'Pass a model directory holding config.json (served by vLLM) or a .gguf file (served by llamacpp).',
      }),
  };
}

async function localView(spec: RecipeComponent, loaded: LoadedRecipe): Promise<ComponentView> {
  const { root, files } = await listLocalSource(loaded.dir, spec);
  return {
    ...directoryView(spec.name, root, files),
    kind: spec.kind,
    missing: (file, why) =>
      new ApertusError(
        'recipe-file-missing',
        `Component ${spec.name} (${spec.source}) holds no ${file}, which ${why}.`,
        { hint: `Put ${file} into ${root}, or fix ${loaded.file}.` },
      ),
  };
}

async function hfView(spec: RecipeComponent, options: RecipeViewOptions): Promise<ComponentView> {
  const snapshot = await openHfSnapshot(
    spec.source,
    {
      ...(spec.include ? { include: spec.include } : {}),
      ...(spec.exclude ? { exclude: spec.exclude } : {}),
      ...(options.hubUrl ? { hubUrl: options.hubUrl } : {}),
    },
    { env: options.env, signal: options.signal },
  );
  const cached = snapshot.listedFrom === 'hf-cache';
  return {
    name: spec.name,
    kind: spec.kind,
    files: snapshot.files,
    bytes: sum(snapshot.files),
    ...(cached
      ? { note: `as the Hugging Face cache holds ${snapshot.repo}@${snapshot.commit.slice(0, 12)}` }
      : {}),
    partial: cached,
    missing: snapshot.missing,
  };
}

function unresolvedView(spec: RecipeComponent): ComponentView {
  return {
    name: spec.name,
    kind: spec.kind,
    files: [],
    bytes: undefined,
    note: `${spec.source}, sized when bundled`,
    partial: true,
    missing: (file, why) =>
      new ApertusError(
        'recipe-file-missing',
        `Component ${spec.name} is ${spec.kind === 'image' ? 'an image' : 'a wheelhouse'}, not model files: it has no ${file}, which ${why}.`,
        { hint: 'Serve models from a component of kind model.' },
      ),
  };
}

async function runtimeView(): Promise<ComponentView> {
  const runtime = await collectRuntimeFiles(PROJECT_ROOT).catch(() => undefined);
  return {
    name: 'runtime',
    kind: 'runtime',
    files: [],
    bytes: runtime?.totalBytes,
    note: runtime
      ? 'Node and the apertus servers'
      : 'Node and the apertus servers, which cannot be collected on this machine',
    partial: true,
    missing: (file, why) =>
      new ApertusError('recipe-file-missing', `The runtime component holds no ${file}, which ${why}.`),
  };
}
