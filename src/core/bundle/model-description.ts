/**
 * What a model component's ModelPack config says about the model (layout/model-pack.ts),
 * read from what the bundle already has: the pinned source and licence from provenance,
 * and architecture, precision and parameter count from its config.json (a few KB, read
 * once). Nothing depends on the clock or the machine, so the config is reproducible.
 */
import { readFile, stat } from 'node:fs/promises';
import { estimateParameters, modelShapeFromConfig } from '../gpu/model-shape.js';
import type { ModelDescription } from '../layout/model-pack.js';
import type { ComponentProvenance } from '../layout/types.js';
import type { PlannedFileLayer } from './write-bundle.js';

const MAX_CONFIG_JSON = 1 << 20;

const FORMATS: Array<[string, string]> = [
  ['.safetensors', 'safetensors'],
  ['.gguf', 'gguf'],
  ['.onnx', 'onnx'],
  ['.bin', 'pytorch'],
  ['.pt', 'pytorch'],
  ['.pth', 'pytorch'],
];

const PRECISIONS: Record<string, string> = {
  bfloat16: 'bf16',
  float16: 'fp16',
  float32: 'fp32',
  float8_e4m3fn: 'fp8',
};

export async function describeModel(
  component: { name: string; provenance: ComponentProvenance },
  files: PlannedFileLayer[],
  bundleVersion: string,
): Promise<ModelDescription> {
  const { provenance } = component;
  const hfRepo = /^hf:\/\/([^@]+)@/.exec(provenance.source)?.[1];
  const description: ModelDescription = {
    name: hfRepo ?? component.name,
    // A Hub model has no version of its own: its commit is the release; local files take the bundle's.
    version: provenance.revision ?? bundleVersion,
    ...(provenance.revision ? { revision: provenance.revision } : {}),
    ...(provenance.license ? { licenses: [provenance.license] } : {}),
  };
  const format = FORMATS.find(([suffix]) => files.some((file) => file.title.toLowerCase().endsWith(suffix)));
  if (format !== undefined) description.format = format[1];
  const configFile = files.find((file) => file.title === 'config.json');
  if (configFile !== undefined && (await stat(configFile.source)).size <= MAX_CONFIG_JSON) {
    Object.assign(description, fromConfigJson(await readFile(configFile.source, 'utf8')));
  }
  return description;
}

function fromConfigJson(text: string): Partial<ModelDescription> {
  let json: { architectures?: unknown; model_type?: unknown; torch_dtype?: unknown; dtype?: unknown };
  try {
    json = JSON.parse(text) as typeof json;
  } catch {
    return {};
  }
  const out: Partial<ModelDescription> = {};
  const architecture = Array.isArray(json.architectures) ? json.architectures[0] : json.model_type;
  if (typeof architecture === 'string' && architecture !== '') out.architecture = architecture;
  const dtype = json.torch_dtype ?? json.dtype;
  if (typeof dtype === 'string') out.precision = PRECISIONS[dtype] ?? dtype;
  try {
    out.paramSize = formatParamSize(estimateParameters(modelShapeFromConfig(json, 'config.json')));
  } catch {
    // A config without the shape fields (an embedding model's, a test's) has no size to say.
  }
  return out;
}

/** ModelPack's paramSize: a count with at most one decimal and a scale letter ('8.1B', '300M'). */
export function formatParamSize(parameters: number): string | undefined {
  for (const [scale, letter] of [
    [1e12, 'T'],
    [1e9, 'B'],
    [1e6, 'M'],
    [1e3, 'K'],
  ] as const) {
    if (parameters >= scale) return `${Number((parameters / scale).toFixed(1))}${letter}`;
  }
  return undefined;
}
