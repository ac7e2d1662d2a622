/**
 * What a host is judged against for one model: its shape and weight bytes, read from the
 * few bytes that say them (config.json and safetensors headers for a Hugging Face model
 * directory, the GGUF header for a llama.cpp file), whether a bundle, a recipe's sources
 * or a local path holds them (bundle/component-files.ts). `device` decides the judgement:
 * GPU memory by the fit plan (gpu/fit.ts), or RAM.
 */
import type { ComponentFile, ComponentView } from '../bundle/component-files.js';
import { ApertusError } from '../errors.js';
import { readGgufHeader } from '../gpu/gguf-metadata.js';
import { type ModelShape, modelShapeFromConfig, modelShapeFromGguf } from '../gpu/model-shape.js';
import { isCastFloat, readSafetensorsHeader, type SafetensorsHeader } from '../gpu/safetensors-header.js';

export interface ModelWorkload {
  /** What and where, for the report: 'model/config.json (vLLM)'. */
  label: string;
  /** gpu: judged by the fit calculation against GPU memory; cpu: against RAM. */
  device: 'gpu' | 'cpu';
  /** The component the model is read from. */
  component?: string;
  shape: ModelShape;
  /** Weight bytes as served, when the weight files were at hand. */
  weights?: { bytes: number; source: string };
  /** The service serving it. */
  service?: string;
  contextSize?: number;
  /** llama.cpp: the contexts of contextSize tokens it holds, each with a KV cache; absent: one. */
  contexts?: number;
  /** vLLM serving LoRA adapters: its --max-lora-rank and --max-loras, which size the buffers the fit counts. */
  lora?: { rank: number; maxLoras: number };
}

/**
 * A model component judged as vLLM would serve it, by its config.json; undefined when it
 * has none to judge (a delta that left it out, or a component of other files).
 */
export async function componentWorkload(
  component: ComponentView,
  service?: string,
): Promise<ModelWorkload | undefined> {
  const config = component.files.find((f) => f.path === 'config.json');
  // A listing that may lack files (the HF cache) must say so, not pass the model unjudged.
  if (!config && component.partial) {
    throw component.missing(
      'config.json',
      service ? `the fit check of vLLM service ${service} reads` : READS_SHAPE,
    );
  }
  if (config?.read === undefined) return undefined;
  return configWorkload(component, { ...config, read: config.read }, service);
}

/** Why config.json is needed, in a missing-file message: "…without config.json, which …". */
export const READS_SHAPE = "the fit check reads the model's shape from";

export type ReadableFile = ComponentFile & Required<Pick<ComponentFile, 'read'>>;

/** config.json is a few KB; anything near this is not a model config. */
const MAX_CONFIG_BYTES = 16 << 20;

/** A Hugging Face model directory judged for the GPU: its config.json's shape, its safetensors headers' bytes. */
export async function configWorkload(
  component: ComponentView,
  config: ReadableFile,
  service?: string,
): Promise<ModelWorkload> {
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
    device: 'gpu',
    component: component.name,
    ...(service ? { service } : {}),
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

/**
 * Our llama.cpp server with LoRA adapters and embeddings: each adapter's tensors are held
 * next to the model's, and each adapter and the embeddings get a context of their own
 * (llama.cpp binds an adapter to a context), so a KV cache each.
 */
export function withServerContexts(
  workload: ModelWorkload,
  adapters: ReadonlyArray<{ path: string; bytes: number }>,
  embeddings: boolean,
): ModelWorkload {
  if (adapters.length === 0 && !embeddings) return workload;
  const adapterBytes = adapters.reduce((sum, adapter) => sum + adapter.bytes, 0);
  const weights = workload.weights ?? { bytes: 0, source: 'unknown' };
  return {
    ...workload,
    ...(adapters.length > 0
      ? {
          weights: {
            bytes: weights.bytes + adapterBytes,
            source: `${weights.source} + ${adapters.length} LoRA adapter${adapters.length === 1 ? '' : 's'} (${adapters.map((a) => a.path).join(', ')})`,
          },
        }
      : {}),
    contexts: 1 + adapters.length + (embeddings ? 1 : 0),
  };
}

/** A GGUF file judged for the CPU (llama.cpp): its header's shape, its tensor data's bytes. */
export async function ggufWorkload(
  file: ReadableFile,
  label: string,
  service?: { name: string; contextSize: number },
  component?: string,
): Promise<ModelWorkload> {
  const header = await readGgufHeader(file.read, label);
  const shape = modelShapeFromGguf(header, label);
  return {
    label: `${label} (llamacpp${service ? `, service ${service.name}` : ''})`,
    device: 'cpu',
    ...(component ? { component } : {}),
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
