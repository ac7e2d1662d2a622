/**
 * What a host is checked for: the models a bundle (or a recipe, or a bare model path)
 * will serve and how, the ports its services take, and the bytes it will write. Read
 * once on the operator's machine, then judged against every host.
 */
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { ApertusError } from '../errors.js';
import { type RangeReader, withFileRange } from '../gpu/byte-range.js';
import { type ImageCuda, imageCudaFromConfig } from '../gpu/cuda-driver.js';
import { readGgufHeader } from '../gpu/gguf-metadata.js';
import { type ModelShape, modelShapeFromConfig, modelShapeFromGguf } from '../gpu/model-shape.js';
import { isCastFloat, readSafetensorsHeader, type SafetensorsHeader } from '../gpu/safetensors-header.js';
import { type BundleEntry, type BundleReader, openBundle } from '../layout/bundle-reader.js';
import { loadBundle } from '../layout/load-bundle.js';
import { ANNOTATION } from '../layout/media-types.js';
import { blobPath } from '../layout/names.js';
import type { BundleConfig, Descriptor } from '../layout/types.js';
import type { RunOptions } from '../progress.js';
import { PROJECT_ROOT } from '../project-root.js';
import { collectRuntimeFiles } from '../runtimes/runtime-files.js';
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
  /** A container runtime is needed: the bundle carries images, or a model is served by vLLM. */
  needsContainers: boolean;
  requirements?: BundleConfig['requirements'];
}

export interface SubjectSource {
  bundle?: string;
  recipe?: string;
  /** A model directory with config.json (vLLM), a config.json, or a .gguf file (llamacpp). */
  model?: string;
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
  if (source.recipe) return subjectFromRecipe(source.recipe);
  if (source.model) return subjectFromModel(source.model);
  return undefined;
}

function entryRange(reader: BundleReader, entry: BundleEntry): RangeReader {
  return async (offset, length) => {
    const end = Math.min(entry.size, offset + length);
    if (end <= offset) return Buffer.alloc(0);
    const chunks: Buffer[] = [];
    for await (const chunk of reader.createReadStream(entry, { start: offset, end: end - 1 }))
      chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
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

function layerTitle(layer: Descriptor): string | undefined {
  return layer.annotations?.[ANNOTATION.title];
}

async function subjectFromBundle(bundlePath: string, run: RunOptions): Promise<CheckSubject> {
  const reader = await openBundle(bundlePath, run.signal ? { signal: run.signal } : {});
  try {
    const bundle = await loadBundle(reader);
    const { config } = bundle;
    const entryOf = (layer: Descriptor): BundleEntry => {
      const entry = reader.get(blobPath(layer.digest));
      if (!entry) {
        throw new ApertusError(
          'bundle-invalid',
          `${bundlePath} lacks blob ${layer.digest} (${layerTitle(layer)}).`,
          {
            hint: `Run \`apertus verify ${bundlePath}\`, then copy the bundle again.`,
          },
        );
      }
      return entry;
    };
    const workloads: ModelWorkload[] = [];
    const served = new Set<string>();
    for (const service of config.services) {
      // GGUF files are llamacpp's; a vllm service's model directory is judged below with the others.
      if (service.runtime !== 'llamacpp') continue;
      const component = bundle.components.find((c) => c.name === service.model.component);
      const layer = component?.layers.find((l) => layerTitle(l) === service.model.path);
      const label = `${service.model.component}/${service.model.path}`;
      if (!layer) {
        throw new ApertusError(
          'bundle-invalid',
          `Service ${service.name} serves ${label}, which the bundle does not hold.`,
          {
            hint: `Run \`apertus verify ${bundlePath}\`; rebuild the bundle from its recipe.`,
          },
        );
      }
      served.add(service.model.component);
      // A delta that leaves the model out: the host holds it from the base release.
      if (bundle.omitted.has(layer.digest)) continue;
      const entry = entryOf(layer);
      const header = await readGgufHeader(entryRange(reader, entry), label);
      workloads.push({
        label: `${label} (llamacpp, service ${service.name})`,
        runtime: 'llamacpp',
        shape: modelShapeFromGguf(header, label),
        weights: { bytes: entry.size - header.dataOffset, source: 'GGUF tensor data' },
        service: service.name,
        contextSize: service.contextSize,
      });
    }
    // A model component with a Hugging Face config.json that no llamacpp service serves is vLLM's.
    for (const component of bundle.components.filter((c) => c.kind === 'model' && !served.has(c.name))) {
      const configLayer = component.layers.find((l) => layerTitle(l) === 'config.json');
      if (!configLayer || bundle.omitted.has(configLayer.digest)) continue;
      const label = `${component.name}/config.json`;
      const shape = modelShapeFromConfig(await reader.readJson(blobPath(configLayer.digest)), label);
      const allShards = component.layers.filter((l) => layerTitle(l)?.endsWith('.safetensors'));
      // A delta may leave some shards out: then the weights are sized from config.json alone.
      const shards = allShards.some((l) => bundle.omitted.has(l.digest)) ? [] : allShards;
      const headers: SafetensorsHeader[] = [];
      for (const shard of shards) {
        headers.push(
          await readSafetensorsHeader(
            entryRange(reader, entryOf(shard)),
            `${component.name}/${layerTitle(shard)}`,
          ),
        );
      }
      workloads.push({
        label: `${label} (vLLM)`,
        runtime: 'vllm',
        shape,
        ...(headers.length > 0
          ? {
              weights: { bytes: servedWeightBytes(headers), source: `${headers.length} safetensors headers` },
            }
          : {}),
      });
    }
    return {
      kind: 'bundle',
      name: `${config.name} ${config.version}`,
      workloads,
      ports: config.services.map((s) => ({ port: s.port, service: s.name })),
      disk: {
        kind: 'bundle',
        plan: {
          config,
          manifestDigest: bundle.manifestDigest,
          components: bundle.components,
          blobs: bundle.blobs,
        },
      },
      needsContainers:
        bundle.components.some((c) => c.kind === 'image') || workloads.some((w) => w.runtime === 'vllm'),
      requirements: config.requirements,
    };
  } finally {
    await reader.close();
  }
}

async function filesUnder(dir: string): Promise<Array<{ relative: string; size: number }>> {
  const out: Array<{ relative: string; size: number }> = [];
  const walk = async (relative: string) => {
    for (const entry of await readdir(path.join(dir, relative), { withFileTypes: true })) {
      const child = relative ? `${relative}/${entry.name}` : entry.name;
      if (entry.isDirectory()) await walk(child);
      else if (entry.isFile()) out.push({ relative: child, size: (await stat(path.join(dir, child))).size });
    }
  };
  await walk('');
  return out;
}

async function subjectFromRecipe(recipePath: string): Promise<CheckSubject> {
  const loaded = await loadRecipe(recipePath);
  const { recipe } = loaded;
  const sources = new Map<string, { root: string; files: Array<{ relative: string; size: number }> }>();
  for (const component of recipe.components) {
    const source = path.resolve(loaded.dir, component.source.slice('file:'.length));
    const info = await lstat(source).catch(() => undefined);
    if (!info) {
      throw new ApertusError(
        'source-not-found',
        `Component ${component.name}: ${component.source} does not exist (${source}).`,
        {
          hint: `Paths in file: sources are relative to ${loaded.dir}.`,
        },
      );
    }
    sources.set(
      component.name,
      info.isDirectory()
        ? { root: source, files: await filesUnder(source) }
        : { root: path.dirname(source), files: [{ relative: path.basename(source), size: info.size }] },
    );
  }
  const workloads: ModelWorkload[] = [];
  const served = new Set<string>();
  for (const service of recipe.services) {
    // GGUF files are llamacpp's; a vllm service's model directory is judged below with the others.
    if (service.runtime !== 'llamacpp') continue;
    const [componentName = '', ...rest] = service.model.split('/');
    const relative = rest.join('/');
    const source = sources.get(componentName);
    const file = source?.files.find((f) => f.relative === relative);
    if (!source || !file) {
      throw new ApertusError(
        'recipe-model-missing',
        `Service ${service.name} serves ${service.model}, which is not in component ${componentName}.`,
        {
          hint: `Put the GGUF file at ${path.join(source?.root ?? loaded.dir, relative)}, or fix services[].model in ${loaded.file}.`,
        },
      );
    }
    served.add(componentName);
    workloads.push(
      await ggufWorkload(path.join(source.root, relative), service.model, service.name, service.contextSize),
    );
  }
  for (const component of recipe.components.filter((c) => c.kind === 'model' && !served.has(c.name))) {
    const source = sources.get(component.name);
    if (source?.files.some((f) => f.relative === 'config.json'))
      workloads.push(await hfWorkload(source.root, component.name));
  }
  let bytes = [...sources.values()].reduce((sum, s) => sum + s.files.reduce((a, f) => a + f.size, 0), 0);
  let detail = "the recipe's component files";
  if (recipe.services.some((s) => s.runtime === 'llamacpp')) {
    const runtime = await collectRuntimeFiles(PROJECT_ROOT).catch(() => undefined);
    if (runtime) {
      bytes += runtime.totalBytes;
      detail += ' and the llamacpp runtime';
    } else detail += ' (without the llamacpp runtime, which cannot be collected on this machine)';
  }
  return {
    kind: 'recipe',
    name: loaded.file,
    workloads,
    ports: recipe.services.map((s) => ({ port: s.port, service: s.name })),
    disk: {
      kind: 'estimate',
      bytes,
      detail: `${detail}; every byte counted, since a recipe has no digests to match the host's store`,
    },
    needsContainers: workloads.some((w) => w.runtime === 'vllm'),
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
    workload = await ggufWorkload(absolute, path.basename(absolute));
    bytes = info.size;
  } else if (info.isDirectory() || path.basename(absolute) === 'config.json') {
    const dir = info.isDirectory() ? absolute : path.dirname(absolute);
    workload = await hfWorkload(dir, path.basename(dir));
    bytes = (await filesUnder(dir)).reduce((sum, f) => sum + f.size, 0);
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

async function ggufWorkload(
  file: string,
  label: string,
  service?: string,
  contextSize?: number,
): Promise<ModelWorkload> {
  return withFileRange(file, async (read, size) => {
    const header = await readGgufHeader(read, label);
    const shape = modelShapeFromGguf(header, label);
    return {
      label: `${label} (llamacpp${service ? `, service ${service}` : ''})`,
      runtime: 'llamacpp',
      shape,
      weights: { bytes: size - header.dataOffset, source: 'GGUF tensor data' },
      ...(service ? { service } : {}),
      contextSize: contextSize ?? shape.maxPositionEmbeddings ?? 4096,
    };
  });
}

async function hfWorkload(dir: string, label: string): Promise<ModelWorkload> {
  const configFile = path.join(dir, 'config.json');
  let json: unknown;
  try {
    json = JSON.parse(await readFile(configFile, 'utf8'));
  } catch (error) {
    throw new ApertusError(
      'model-config-invalid',
      `Cannot read ${configFile}: ${(error as Error).message}.`,
      {
        hint: 'A Hugging Face model directory holds config.json next to its .safetensors files.',
        cause: error,
      },
    );
  }
  const shape = modelShapeFromConfig(json, `${label}/config.json`);
  const shards = (await readdir(dir)).filter((name) => name.endsWith('.safetensors')).sort();
  const headers: SafetensorsHeader[] = [];
  for (const shard of shards) {
    headers.push(
      await withFileRange(path.join(dir, shard), (read) =>
        readSafetensorsHeader(read, path.join(label, shard)),
      ),
    );
  }
  return {
    label: `${label}/config.json (vLLM)`,
    runtime: 'vllm',
    shape,
    ...(headers.length > 0
      ? { weights: { bytes: servedWeightBytes(headers), source: `${headers.length} safetensors headers` } }
      : {}),
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
