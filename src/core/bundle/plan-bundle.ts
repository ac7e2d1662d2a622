import path from 'node:path';
import { type EvalSpec, loadEvalSets } from '../eval/eval-set.js';
import { assertAdapterBase } from '../layout/adapter-base.js';
import { bundleFileName } from '../layout/names.js';
import type { ServiceSpec } from '../layout/types.js';
import { PROJECT_ROOT } from '../project-root.js';
import { needsRuntimeComponent, recipeAdapterOf } from '../runtimes/registry.js';
import { resolveServices, resolveVerify } from '../runtimes/resolve-services.js';
import { collectRuntimeFiles } from '../runtimes/runtime-files.js';
import { componentContext } from '../sources/component-context.js';
import { listLocalSource } from '../sources/file/local-files.js';
import { fetchHf } from '../sources/hf/fetch-hf.js';
import { hfRepoTreeUrl } from '../sources/hf/repo-url.js';
import { type HfResolvedSource, resolveHf } from '../sources/hf/resolve-hf.js';
import { fetchOciImage } from '../sources/oci/fetch-oci.js';
import { type OciResolvedSource, resolveOci } from '../sources/oci/resolve-oci.js';
import { type PipResolvedSource, resolvePip } from '../sources/pip/resolve-pip.js';
import type { SourceContext } from '../sources/types.js';
import { type LoadedRecipe, loadRecipe } from '../spec/load-recipe.js';
import type { RecipeComponent } from '../spec/recipe-schema.js';
import { summariseWheels, wheelsComponent } from './wheels-component.js';
import type { BundleWritePlan } from './write-bundle.js';

type PlannedComponent = BundleWritePlan['components'][number];
type PlannedLayer = PlannedComponent['layers'][number];

/** What `apertus bundle --dry-run` shows: each component, pinned, with its files and bytes. */
export interface BundlePlanSummary {
  name: string;
  version: string;
  recipe: string;
  outPath: string;
  components: Array<{
    name: string;
    kind: string;
    source: string;
    /** Commit sha (hf:) or null for local files. */
    revision: string | null;
    license: string | null;
    files: number;
    bytes: number;
  }>;
  totalBytes: number;
}

/** One recipe component, resolved to exact files but not yet downloaded. */
type ResolvedComponent =
  | { type: 'local'; spec: RecipeComponent; root: string; files: Array<{ path: string; size: number }> }
  | { type: 'hf'; spec: RecipeComponent; resolved: HfResolvedSource }
  | { type: 'oci'; spec: RecipeComponent; resolved: OciResolvedSource }
  | { type: 'pip'; spec: RecipeComponent; resolved: PipResolvedSource }
  | { type: 'runtime'; component: PlannedComponent; bytes: number; files: number };

/** A recipe resolved to exact files and revisions: everything but the downloads. */
export interface ResolvedBundle {
  summary: BundlePlanSummary;
  recipe: LoadedRecipe;
  components: ResolvedComponent[];
  services: ServiceSpec[];
  /** The evaluation sets, read and checked line by line; undefined when the recipe has none. */
  eval: EvalSpec | undefined;
}

export interface PlanOptions {
  outDir: string;
  /** Where downloads are kept between runs (resume, reuse). */
  cacheDir: string;
  /** HF_TOKEN, HF_ENDPOINT, HF_HOME are read from here, never from process.env directly. */
  env: Readonly<Record<string, string | undefined>>;
  /** The Hub's base URL; overrides HF_ENDPOINT. */
  hubUrl?: string | undefined;
}

/**
 * Resolves every source of a recipe: hf: revisions to commit shas with their file lists,
 * local files with their sizes. Reads metadata only; `--dry-run` stops here.
 */
export async function resolveBundle(
  recipePath: string,
  options: PlanOptions,
  ctx: Omit<SourceContext, 'cacheDir' | 'env'>,
): Promise<ResolvedBundle> {
  const recipe = await loadRecipe(recipePath);
  const evalSpec = await recipeEvalSpec(recipe);
  const sourceContext: SourceContext = { ...ctx, cacheDir: options.cacheDir, env: options.env };
  const components: ResolvedComponent[] = [];
  for (const spec of recipe.recipe.components) {
    if (spec.source.startsWith('hf:')) {
      const resolved = await resolveHf(
        spec.source,
        { ...pick(spec, 'include', 'exclude'), ...(options.hubUrl ? { hubUrl: options.hubUrl } : {}) },
        sourceContext,
      );
      components.push({ type: 'hf', spec, resolved });
    } else if (spec.source.startsWith('oci:')) {
      const resolved = await resolveOci(
        spec.source,
        { ...pick(spec, 'platform', 'insecure'), kind: spec.kind === 'model' ? 'model' : 'image' },
        sourceContext,
      );
      components.push({ type: 'oci', spec, resolved });
    } else if (spec.source.startsWith('pip:')) {
      // pip resolves dependencies from the wheels themselves: this downloads them, into the cache.
      const options = { recipeDir: recipe.dir, ...pick(spec, 'python', 'platforms', 'indexUrl') };
      const resolved = await resolvePip(spec.source, options, sourceContext);
      components.push({ type: 'pip', spec, resolved });
    } else {
      components.push({ type: 'local', spec, ...(await listLocalSource(recipe.dir, spec)) });
    }
  }
  checkAdapterRevisions(components);
  // Our own servers (llamacpp, rag) run on the Node binary and files of the runtime component.
  if (needsRuntimeComponent(recipe.recipe.services)) {
    components.push(await resolveRuntime());
  }

  const services = resolveServices(recipe.recipe, recipe.file, (name) => {
    const holder = components.find((c) => (c.type === 'local' || c.type === 'hf') && c.spec.name === name);
    if (holder?.type === 'local') return holder.files.map((f) => f.path);
    if (holder?.type === 'hf') return holder.resolved.files.map((f) => f.path);
    return null;
  });
  const summary: BundlePlanSummary = {
    name: recipe.recipe.metadata.name,
    version: recipe.recipe.metadata.version,
    recipe: recipe.file,
    outPath: path.join(
      path.resolve(options.outDir),
      bundleFileName(recipe.recipe.metadata.name, recipe.recipe.metadata.version),
    ),
    components: components.map(summariseComponent),
    totalBytes: 0,
  };
  summary.totalBytes = summary.components.reduce((sum, c) => sum + c.bytes, 0);
  return { summary, recipe, components, services, eval: evalSpec };
}

/** Downloads what the resolved bundle needs (verified, resumable) and returns the write plan. */
export async function fetchBundle(
  resolved: ResolvedBundle,
  options: PlanOptions,
  ctx: Omit<SourceContext, 'cacheDir' | 'env'>,
): Promise<BundleWritePlan> {
  const sourceContext: SourceContext = { ...ctx, cacheDir: options.cacheDir, env: options.env };
  const components: PlannedComponent[] = [];
  for (const component of resolved.components) {
    if (component.type === 'runtime') {
      components.push(component.component);
    } else if (component.type === 'pip') {
      components.push(await wheelsComponent(component.spec, component.resolved, sourceContext));
    } else if (component.type === 'local') {
      components.push({
        name: component.spec.name,
        kind: component.spec.kind,
        provenance: {
          source: component.spec.source,
          ...(component.spec.license ? { license: component.spec.license } : {}),
        },
        ...(component.spec.base ? { base: component.spec.base } : {}),
        layers: component.files.map((f) => ({
          type: 'file',
          source: path.join(component.root, f.path),
          title: f.path,
        })),
      });
    } else if (component.type === 'oci') {
      const image = await fetchOciImage(
        component.resolved,
        componentContext(sourceContext, component.spec.name),
      );
      const license = component.spec.license ?? component.resolved.license;
      const model = component.spec.kind === 'model';
      components.push({
        name: component.spec.name,
        kind: model ? 'model' : 'image',
        provenance: {
          source: component.resolved.source,
          revision: component.resolved.revision,
          ...(license ? { license } : {}),
          ...(model ? {} : { platform: component.resolved.platform }),
        },
        layers: [],
        image: {
          manifest: {
            source: image.manifest.localPath,
            mediaType: image.manifest.mediaType,
            digest: image.manifest.digest,
            size: image.manifest.size,
          },
          blobs: image.files.map((f) => ({ source: f.localPath, digest: f.digest, size: f.size })),
        },
      });
    } else {
      const fetched = await fetchHf(component.resolved, componentContext(sourceContext, component.spec.name));
      const license = component.spec.license ?? component.resolved.license;
      components.push({
        name: component.spec.name,
        kind: component.spec.kind,
        provenance: {
          source: component.resolved.pinned,
          revision: component.resolved.revision,
          ...(license ? { license } : {}),
          url: hfRepoTreeUrl(
            component.resolved.endpoint,
            component.resolved.repo,
            component.resolved.revision,
          ),
        },
        ...(component.spec.base ? { base: component.spec.base } : {}),
        layers: fetched.map((f) => ({ type: 'file', source: f.localPath, title: f.path })),
      });
    }
  }
  const { recipe } = resolved.recipe;
  return {
    name: recipe.metadata.name,
    version: recipe.metadata.version,
    description: recipe.metadata.description,
    recipe: { fileName: path.basename(resolved.recipe.file), bytes: resolved.recipe.bytes },
    components,
    services: resolved.services,
    verify: { ...resolveVerify(recipe), ...(resolved.eval ? { eval: resolved.eval } : {}) },
    requirements: {},
  };
}

/** The recipe's verify.eval with its sets read from disk (a bad line fails here, before any download). */
async function recipeEvalSpec(loaded: LoadedRecipe): Promise<EvalSpec | undefined> {
  const spec = loaded.recipe.verify.eval;
  if (spec === undefined) return undefined;
  const { services } = loaded.recipe;
  const rag = services.find((s) => s.runtime === 'rag');
  const model = services.find((s) => recipeAdapterOf(s).recipeModel(s) !== null);
  const k = spec.k ?? (rag && 'topK' in rag && typeof rag.topK === 'number' ? rag.topK : 3);
  const sets = await loadEvalSets(
    loaded.dir,
    spec.sets,
    (needsRag) => (needsRag ? rag : (model ?? rag))?.name,
  );
  return { k, thresholds: spec.thresholds, sets };
}

/**
 * An adapter pinned to its base's revision is refused here, before any download, when the
 * base resolves to another (the weights digest is checked once the files are hashed, when
 * the bundle is written).
 */
function checkAdapterRevisions(components: readonly ResolvedComponent[]): void {
  const candidates = components.flatMap((c) =>
    c.type === 'runtime'
      ? []
      : [
          {
            name: c.spec.name,
            kind: c.spec.kind,
            revision: c.type === 'hf' || c.type === 'oci' ? c.resolved.revision : undefined,
            layers: [],
          },
        ],
  );
  for (const component of components) {
    if (component.type === 'runtime' || component.spec.base?.revision === undefined) continue;
    const { revision, component: base } = component.spec.base;
    assertAdapterBase(
      { name: component.spec.name, base: { component: base, revision } },
      candidates,
      'the recipe',
    );
  }
}

function pick<T extends object, K extends keyof T>(value: T, ...keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const key of keys) if (value[key] !== undefined) out[key] = value[key];
  return out;
}

async function resolveRuntime(): Promise<ResolvedComponent> {
  const runtime = await collectRuntimeFiles(PROJECT_ROOT);
  const layers: PlannedLayer[] = [
    { type: 'file', source: runtime.node.path, title: 'bin/node', mode: 0o755 },
    { type: 'tar', name: 'server', entries: runtime.tree },
  ];
  return {
    type: 'runtime',
    component: {
      name: 'runtime',
      kind: 'runtime',
      provenance: { source: `node ${process.version} + apertus llamacpp server`, license: 'MIT' },
      layers,
    },
    bytes: runtime.totalBytes,
    files: 1 + runtime.tree.length,
  };
}

function summariseComponent(component: ResolvedComponent): BundlePlanSummary['components'][number] {
  switch (component.type) {
    case 'pip':
      return summariseWheels(component.spec, component.resolved);
    case 'runtime':
      return {
        name: component.component.name,
        kind: component.component.kind,
        source: component.component.provenance.source,
        revision: null,
        license: component.component.provenance.license ?? null,
        files: component.files,
        bytes: component.bytes,
      };
    case 'local':
      return {
        name: component.spec.name,
        kind: component.spec.kind,
        source: component.spec.source,
        revision: null,
        license: component.spec.license ?? null,
        files: component.files.length,
        bytes: component.files.reduce((sum, f) => sum + f.size, 0),
      };
    case 'oci':
      return {
        name: component.spec.name,
        kind: component.spec.kind,
        source: component.resolved.pinned,
        revision: component.resolved.revision,
        license: component.spec.license ?? component.resolved.license ?? null,
        files: component.resolved.files.length,
        bytes: component.resolved.files.reduce((sum, f) => sum + f.size, 0),
      };
    case 'hf':
      return {
        name: component.spec.name,
        kind: component.spec.kind,
        source: component.resolved.pinned,
        revision: component.resolved.revision,
        license: component.spec.license ?? component.resolved.license ?? null,
        files: component.resolved.files.length,
        bytes: component.resolved.files.reduce((sum, f) => sum + f.size, 0),
      };
  }
}
