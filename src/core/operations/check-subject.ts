/**
 * What a host is checked for: the models a bundle (or a recipe, or a bare model path)
 * will serve and how, the ports its services take, and the bytes it will write. Read
 * once on the operator's machine, then judged against every host. Bundles and recipes
 * are read through the same view of their components (bundle/component-files.ts), so
 * workloads, ports and disk come out the same way for both.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  bundleComponentViews,
  type ComponentView,
  directoryView,
  type RecipeViewOptions,
  recipeComponentViews,
} from '../bundle/component-files.js';
import {
  componentWorkload,
  configWorkload,
  ggufWorkload,
  type ModelWorkload,
  READS_SHAPE,
  type ReadableFile,
} from '../check/model-workload.js';
import { ApertusError } from '../errors.js';
import { type ImageCuda, imageCudaFromConfig } from '../gpu/cuda-driver.js';
import { type BundleReader, openBundle } from '../layout/bundle-reader.js';
import { type LoadedBundle, loadBundle } from '../layout/load-bundle.js';
import type { BundleConfig, ServiceSpec } from '../layout/types.js';
import type { RunOptions } from '../progress.js';
import type { OfflineVerdict } from '../runtimes/offline-verdict.js';
import {
  adapterOf,
  needsContainerEngine,
  needsRuntimeComponent,
  servicePorts,
} from '../runtimes/registry.js';
import { resolveServices } from '../runtimes/resolve-services.js';
import { listLocalFiles } from '../sources/file/local-files.js';
import { loadRecipe } from '../spec/load-recipe.js';
import type { PlanInput } from './install-plan.js';
import { judgeBundleOffline } from './offline-gate.js';

export type { ModelWorkload } from '../check/model-workload.js';

export type DiskNeed =
  /** The install planner decides, against the blobs the host already has. */
  { kind: 'bundle'; plan: PlanInput } | { kind: 'estimate'; bytes: number; detail: string };

export interface CheckSubject {
  kind: 'bundle' | 'recipe' | 'model';
  /** 'demo 0.1.0', a recipe or model path. */
  name: string;
  workloads: ModelWorkload[];
  ports: Array<{ port: number; service: string }>;
  disk?: DiskNeed;
  /** A container runtime is needed: the bundle or recipe has images, or a model is served on GPU. */
  needsContainers: boolean;
  /** The bundle carries our Node runtime (llamacpp and rag services, a GGUF model): the host runs its linux-x64 binaries. */
  needsNodeRuntime: boolean;
  requirements?: BundleConfig['requirements'];
  /** A bundle's served models judged for starting with no network (operations/offline-gate.ts). */
  offline?: OfflineVerdict[];
}

export interface SubjectSource {
  bundle?: string;
  recipe?: string;
  /** A model directory with config.json (vLLM), a config.json, or a .gguf file (llamacpp). */
  model?: string;
  /**
   * Where a recipe's hf: sources read HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE, HF_ENDPOINT and
   * HF_TOKEN from; this process's environment when the caller passes none.
   */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /** The Hub's base URL for a recipe's hf: sources; overrides HF_ENDPOINT. */
  hubUrl?: string | undefined;
}

/** Read what to check for; undefined when nothing was named (a bare host check). */
export async function loadCheckSubject(
  source: SubjectSource,
  run: RunOptions = {},
): Promise<CheckSubject | undefined> {
  const named = [source.bundle, source.recipe, source.model].filter((s) => s !== undefined);
  if (named.length > 1) {
    throw new ApertusError('usage', 'Name one of --bundle, --recipe and --model.', {
      hint: 'Check a host against a bundle (--bundle X.tar), a recipe directory (--recipe DIR) or one model (--model PATH).',
    });
  }
  if (source.bundle) return subjectFromBundle(source.bundle, run);
  if (source.recipe) {
    return subjectFromRecipe(source.recipe, {
      env: source.env ?? process.env,
      hubUrl: source.hubUrl,
      signal: run.signal,
    });
  }
  if (source.model) return subjectFromModel(source.model);
  return undefined;
}

/**
 * The models the services serve and how each is judged: each service kind reads its own
 * (runtimes/<kind>/adapter.ts `workloads`); a model component no service claims is judged
 * as vLLM would serve it, by its Hugging Face config.json, on GPU.
 */
export async function modelWorkloads(
  services: readonly ServiceSpec[],
  components: readonly ComponentView[],
): Promise<ModelWorkload[]> {
  const byName = new Map(components.map((c) => [c.name, c]));
  const workloads: ModelWorkload[] = [];
  const claimed = new Set<string>();
  for (const service of services) {
    const adapter = adapterOf(service);
    const component = adapter.modelComponent?.(service);
    if (component !== undefined) claimed.add(component);
    workloads.push(...((await adapter.workloads?.(service, byName)) ?? []));
  }
  for (const component of components) {
    if (component.kind !== 'model' || claimed.has(component.name)) continue;
    const workload = await componentWorkload(component);
    if (workload) workloads.push(workload);
  }
  return workloads;
}

/** What bundles and recipes have in common: the ports their services take, and whether containers run. */
function servicesAndContainers(
  services: readonly ServiceSpec[],
  components: readonly ComponentView[],
  workloads: readonly ModelWorkload[],
): Pick<CheckSubject, 'ports' | 'needsContainers' | 'needsNodeRuntime'> {
  return {
    ports: services.flatMap((s) => servicePorts(s).map((port) => ({ port, service: s.name }))),
    needsContainers:
      components.some((c) => c.kind === 'image') ||
      needsContainerEngine(services) ||
      workloads.some((w) => w.device === 'gpu'),
    needsNodeRuntime: needsRuntimeComponent(services),
  };
}

async function subjectFromBundle(bundlePath: string, run: RunOptions): Promise<CheckSubject> {
  const reader = await openBundle(bundlePath, run.signal ? { signal: run.signal } : {});
  try {
    return await subjectFromOpenBundle(reader, await loadBundle(reader));
  } finally {
    await reader.close();
  }
}

/** The check subject of a bundle already open and loaded (install reads its bundle once). */
export async function subjectFromOpenBundle(
  reader: BundleReader,
  bundle: LoadedBundle,
): Promise<CheckSubject> {
  const { config } = bundle;
  const components = bundleComponentViews(reader, bundle);
  const workloads = await modelWorkloads(config.services, components);
  const offline = await judgeBundleOffline(
    config.services,
    components,
    new Map(config.components.map((c) => [c.name, c.provenance.source])),
  );
  return {
    kind: 'bundle',
    name: `${config.name} ${config.version}`,
    workloads,
    ...servicesAndContainers(config.services, components, workloads),
    disk: {
      kind: 'bundle',
      plan: {
        config,
        manifestDigest: bundle.manifestDigest,
        components: bundle.components,
        blobs: bundle.blobs,
      },
    },
    requirements: config.requirements,
    offline,
  };
}

async function subjectFromRecipe(recipePath: string, options: RecipeViewOptions): Promise<CheckSubject> {
  const loaded = await loadRecipe(recipePath);
  const components = await recipeComponentViews(loaded, options);
  // The services as `bundle` would record them, so they are judged as a bundle's are.
  const services = resolveServices(
    loaded.recipe,
    loaded.file,
    (name) => components.find((c) => c.name === name)?.files.map((f) => f.path) ?? null,
  );
  const workloads = await modelWorkloads(services, components);
  return {
    kind: 'recipe',
    name: loaded.file,
    workloads,
    ...servicesAndContainers(services, components, workloads),
    disk: recipeDisk(components),
  };
}

/** Every byte of the recipe's components, since a recipe has no digests to match the host's store. */
function recipeDisk(components: readonly ComponentView[]): DiskNeed {
  const counted = components.filter((c) => c.bytes !== undefined);
  const notes = counted.flatMap((c) => (c.note ? [`${c.name}: ${c.note}`] : []));
  const unknown = components.filter((c) => c.bytes === undefined).map((c) => `${c.name} (${c.note})`);
  return {
    kind: 'estimate',
    bytes: counted.reduce((total, c) => total + (c.bytes ?? 0), 0),
    detail: [
      `the recipe's component files${notes.length > 0 ? ` (${notes.join('; ')})` : ''}, every byte counted, since a recipe has no digests to match the host's store`,
      ...(unknown.length > 0 ? [`not counted: ${unknown.join(', ')}`] : []),
    ].join('; '),
  };
}

async function subjectFromModel(modelPath: string): Promise<CheckSubject> {
  const absolute = path.resolve(modelPath);
  const info = await stat(absolute).catch(() => undefined);
  if (!info) {
    throw new ApertusError('model-not-found', `No model at ${modelPath}.`, {
      hint: 'Pass a model directory holding config.json (served by vLLM) or a .gguf file (served by llamacpp).',
    });
  }
  let workload: ModelWorkload;
  let bytes: number;
  if (info.isFile() && absolute.endsWith('.gguf')) {
    const name = path.basename(absolute);
    const [file] = directoryView(name, path.dirname(absolute), [{ path: name, size: info.size }]).files;
    workload = await ggufWorkload(file as ReadableFile, name);
    bytes = info.size;
  } else if (info.isDirectory() || path.basename(absolute) === 'config.json') {
    const dir = info.isDirectory() ? absolute : path.dirname(absolute);
    // A Hugging Face snapshot folder is links into blobs/: follow them.
    const view = directoryView(path.basename(dir), dir, await listLocalFiles(dir, { followLinks: true }));
    const config = view.files.find((f) => f.path === 'config.json');
    if (config?.read === undefined) throw view.missing('config.json', READS_SHAPE);
    workload = await configWorkload(view, { ...config, read: config.read });
    bytes = view.bytes ?? 0;
  } else {
    throw new ApertusError(
      'model-unsupported',
      `${modelPath} is neither a model directory, a config.json nor a .gguf file.`,
      {
        hint: 'Pass a model directory holding config.json (served by vLLM) or a .gguf file (served by llamacpp).',
      },
    );
  }
  return {
    kind: 'model',
    name: absolute,
    workloads: [workload],
    ports: [],
    disk: { kind: 'estimate', bytes, detail: 'the model files, without a runtime or its image' },
    needsContainers: workload.device === 'gpu',
    needsNodeRuntime: workload.device === 'cpu',
  };
}

/**
 * The runtime image's CUDA, given on the command line: a version ('13.0', '12.9.1'), or an
 * OCI image config file whose config.Env carries CUDA_VERSION / NVIDIA_REQUIRE_CUDA.
 */
export async function loadImageCuda(source: {
  cudaVersion?: string;
  configFile?: string;
}): Promise<ImageCuda | undefined> {
  if (source.cudaVersion !== undefined && source.configFile !== undefined) {
    throw new ApertusError('usage', 'Pass --image-cuda or --image-config, not both.', {
      hint: '--image-cuda 13.0 names the CUDA version; --image-config FILE reads it from the image config.',
    });
  }
  if (source.cudaVersion !== undefined) {
    if (!/^\d+\.\d+(\.\d+)?$/.test(source.cudaVersion)) {
      throw new ApertusError('usage', `--image-cuda ${source.cudaVersion} is not a CUDA version.`, {
        hint: "Write it as MAJOR.MINOR[.PATCH], e.g. 13.0 or 12.8.1 (the image's CUDA_VERSION).",
      });
    }
    return { version: source.cudaVersion, source: 'given' };
  }
  if (source.configFile === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(await readFile(source.configFile, 'utf8'));
  } catch (error) {
    throw new ApertusError(
      'image-config-invalid',
      `Cannot read the image config ${source.configFile}: ${(error as Error).message}.`,
      {
        hint: 'Pass the image config JSON (skopeo inspect --config docker://IMAGE > config.json, or the config blob of an OCI layout).',
        cause: error,
      },
    );
  }
  const cuda = imageCudaFromConfig(json);
  if (!cuda) {
    throw new ApertusError(
      'image-config-no-cuda',
      `${source.configFile} sets neither CUDA_VERSION nor NVIDIA_REQUIRE_CUDA in config.Env.`,
      {
        hint: 'Images built on nvidia/cuda set both; for another base image pass --image-cuda with the CUDA it was built for.',
      },
    );
  }
  return cuda;
}
