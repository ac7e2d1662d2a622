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
  type ComponentFile,
  type ComponentView,
  directoryView,
  type RecipeViewOptions,
  recipeComponentViews,
} from '../bundle/component-files.js';
import { ApertusError } from '../errors.js';
import { type ImageCuda, imageCudaFromConfig } from '../gpu/cuda-driver.js';
import { readGgufHeader } from '../gpu/gguf-metadata.js';
import { type ModelShape, modelShapeFromConfig, modelShapeFromGguf } from '../gpu/model-shape.js';
import { isCastFloat, readSafetensorsHeader, type SafetensorsHeader } from '../gpu/safetensors-header.js';
import { type BundleReader, openBundle } from '../layout/bundle-reader.js';
import { type LoadedBundle, loadBundle } from '../layout/load-bundle.js';
import type { BundleConfig, ServiceSpec } from '../layout/types.js';
import type { RunOptions } from '../progress.js';
import { resolveServices } from '../runtimes/resolve-services.js';
import { listLocalFiles } from '../sources/file/local-files.js';
import { loadRecipe } from '../spec/load-recipe.js';
import type { PlanInput } from './install-plan.js';

export interface ModelWorkload {
  /** What and where, for the report: 'model/config.json (vLLM)'. */
  label: string;
  /** vllm: GPU, judged by the fit calculation; llamacpp: CPU, judged against RAM. */
  runtime: 'vllm' | 'llamacpp';
  shape: ModelShape;
  /** Weight bytes as served, when the weight files were at hand. */
  weights?: { bytes: number; source: string };
  /** The llamacpp service serving it. */
  service?: string;
  contextSize?: number;
}

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
  /** A container runtime is needed: the bundle or recipe has images, or a model is served by vLLM. */
  needsContainers: boolean;
  requirements?: BundleConfig['requirements'];
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
 * The models the services serve and how each is judged: a llamacpp service's GGUF file on
 * CPU; any other model component's Hugging Face config.json (with its safetensors headers
 * for the weight bytes) as vLLM's on GPU. The one place here that knows service kinds.
 */
export async function modelWorkloads(
  services: readonly ServiceSpec[],
  components: readonly ComponentView[],
): Promise<ModelWorkload[]> {
  const byName = new Map(components.map((c) => [c.name, c]));
  const workloads: ModelWorkload[] = [];
  const servedByLlamacpp = new Set<string>();
  for (const service of services) {
    if (service.runtime !== 'llamacpp') continue;
    const { component: name, path: file } = service.model;
    const component = byName.get(name);
    const found = component?.files.find((f) => f.path === file);
    if (!component || !found) {
      const why = `service ${service.name} serves`;
      throw component
        ? component.missing(file, why)
        : new ApertusError(
            'model-component-missing',
            `Service ${service.name} serves ${name}/${file}: there is no component ${name}.`,
            {
              hint: 'Name a component of kind model in services[].model.',
            },
          );
    }
    servedByLlamacpp.add(name);
    // A delta that leaves the model out: the host holds it from the base release.
    if (found.read === undefined) continue;
    workloads.push(await ggufWorkload({ ...found, read: found.read }, `${name}/${file}`, service));
  }
  const vllm = new Map(services.flatMap((s) => (s.runtime === 'vllm' ? [[s.model.component, s.name]] : [])));
  for (const component of components) {
    if (component.kind !== 'model' || servedByLlamacpp.has(component.name)) continue;
    const config = component.files.find((f) => f.path === 'config.json');
    // A listing that may lack files (the HF cache) must say so, not pass the model unjudged.
    if (!config && component.partial) {
      const service = vllm.get(component.name);
      throw component.missing(
        'config.json',
        service ? `the fit check of vLLM service ${service} reads` : READS_SHAPE,
      );
    }
    // Without config.json (or, in a delta, without its bytes) there is nothing to judge.
    if (config?.read === undefined) continue;
    workloads.push(await configWorkload(component, { ...config, read: config.read }));
  }
  return workloads;
}

/** Why config.json is needed, in a missing-file message: "…without config.json, which …". */
const READS_SHAPE = "the fit check reads the model's shape from";

type ReadableFile = ComponentFile & Required<Pick<ComponentFile, 'read'>>;

/** config.json is a few KB; anything near this is not a model config. */
const MAX_CONFIG_BYTES = 16 << 20;

async function configWorkload(component: ComponentView, config: ReadableFile): Promise<ModelWorkload> {
  const label = `${component.name}/config.json`;
  let json: unknown;
  try {
    if (config.size > MAX_CONFIG_BYTES) throw new Error(`it is ${config.size} bytes, too large for a config`);
    json = JSON.parse((await config.read(0, config.size)).toString('utf8'));
  } catch (error) {
    if (error instanceof ApertusError) throw error;
    throw new ApertusError('model-config-invalid', `Cannot read ${label}: ${(error as Error).message}.`, {
      hint: 'A Hugging Face model directory holds config.json next to its .safetensors files.',
      cause: error,
    });
  }
  const shape = modelShapeFromConfig(json, label);
  const headers: SafetensorsHeader[] = [];
  for (const shard of await servedShards(component)) {
    headers.push(await readSafetensorsHeader(shard.read, `${component.name}/${shard.path}`));
  }
  return {
    label: `${label} (vLLM)`,
    runtime: 'vllm',
    shape,
    ...(headers.length > 0
      ? { weights: { bytes: servedWeightBytes(headers), source: `${headers.length} safetensors headers` } }
      : {}),
  };
}

const SHARD_INDEX = 'model.safetensors.index.json';

/**
 * The .safetensors files vLLM loads (the model directory's own, not a subfolder such as
 * original/), when every one is readable; else none, and the weights are sized from
 * config.json. A listing that may lack files counts only when the shard index (or a single
 * model.safetensors) shows nothing is missing.
 */
async function servedShards(component: ComponentView): Promise<ReadableFile[]> {
  const shards = component.files.filter((f) => f.path.endsWith('.safetensors') && !f.path.includes('/'));
  // A delta may leave some shards out.
  if (shards.length === 0 || shards.some((f) => f.read === undefined)) return [];
  const readable = shards as ReadableFile[];
  if (!component.partial) return readable;
  const index = component.files.find((f) => f.path === SHARD_INDEX);
  if (index?.read === undefined || index.size > MAX_CONFIG_BYTES * 4) {
    return readable.length === 1 && readable[0]?.path === 'model.safetensors' ? readable : [];
  }
  let named: string[];
  try {
    const parsed = JSON.parse((await index.read(0, index.size)).toString('utf8')) as { weight_map?: unknown };
    named = Object.values((parsed.weight_map ?? {}) as Record<string, unknown>).map(String);
  } catch {
    return [];
  }
  const present = new Set(readable.map((f) => f.path));
  return named.length > 0 && named.every((name) => present.has(name)) ? readable : [];
}

async function ggufWorkload(
  file: ReadableFile,
  label: string,
  service?: { name: string; contextSize: number },
): Promise<ModelWorkload> {
  const header = await readGgufHeader(file.read, label);
  const shape = modelShapeFromGguf(header, label);
  return {
    label: `${label} (llamacpp${service ? `, service ${service.name}` : ''})`,
    runtime: 'llamacpp',
    shape,
    weights: { bytes: file.size - header.dataOffset, source: 'GGUF tensor data' },
    ...(service ? { service: service.name } : {}),
    contextSize: service?.contextSize ?? shape.maxPositionEmbeddings ?? 4096,
  };
}

/**
 * Weight bytes as vLLM holds them: float tensors in the 16-bit model dtype (an fp32
 * checkpoint is served in 16 bits, runtime-facts 3.3), quantized tensors (F8, packed
 * ints) as stored.
 */
function servedWeightBytes(headers: readonly SafetensorsHeader[]): number {
  let bytes = 0;
  for (const header of headers) {
    for (const tensor of header.tensors)
      bytes += isCastFloat(tensor.dtype) ? tensor.parameters * 2 : tensor.bytes;
  }
  return bytes;
}

/** What bundles and recipes have in common: the ports their services take, and whether containers run. */
function servicesAndContainers(
  services: readonly ServiceSpec[],
  components: readonly ComponentView[],
  workloads: readonly ModelWorkload[],
): Pick<CheckSubject, 'ports' | 'needsContainers'> {
  return {
    ports: services.map((s) => ({ port: s.port, service: s.name })),
    needsContainers:
      components.some((c) => c.kind === 'image') || workloads.some((w) => w.runtime === 'vllm'),
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
    needsContainers: workload.runtime === 'vllm',
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
