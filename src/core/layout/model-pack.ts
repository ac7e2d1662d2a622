/**
 * Model components as CNCF ModelPack v1 artifacts (modelpack/model-spec docs/spec.md and
 * docs/config.md): the manifest's artifactType and config type say "model", each file is one
 * uncompressed `.raw` layer annotated with its path, and the config describes the model and
 * lists every layer's DiffID (for a raw layer, its digest). Written canonically, with no
 * timestamps, so the same files give the same manifest digest on every run.
 */
import { canonicalJsonBytes } from './canonical-json.js';
import { type Blob, blobOf } from './manifests.js';
import { ANNOTATION, MEDIA_TYPE, MODELPACK } from './media-types.js';
import type { Descriptor } from './types.js';

/** What the config's `descriptor` and `config` say; every field but name is optional in the spec. */
export interface ModelDescription {
  name: string;
  version?: string;
  revision?: string;
  licenses?: string[];
  architecture?: string;
  /** 'safetensors', 'gguf', 'pytorch', 'onnx'. */
  format?: string;
  /** '<count><scale>', e.g. '8.1B' (config.md paramSize). */
  paramSize?: string;
  /** 'bf16', 'fp16', 'fp32', ... */
  precision?: string;
}

const WEIGHT_SUFFIXES = [
  '.safetensors',
  '.gguf',
  '.bin',
  '.pt',
  '.pth',
  '.ckpt',
  '.onnx',
  '.h5',
  '.msgpack',
  '.npz',
];
const DOC_NAMES = /^(readme|license|licence|notice|copying|use_policy|model_card)([.-].*)?$/i;
const DOC_SUFFIXES = ['.md', '.rst', '.pdf', '.html'];

/**
 * The ModelPack layer type of a model file: weights by their suffix, Python modules as code,
 * model cards and licences as docs, and everything else (config.json, tokenizer files, chat
 * templates, vocabularies) as weight config, which runtimes need next to the weights.
 */
export function modelLayerMediaType(path: string): string {
  const name = (path.split('/').pop() ?? path).toLowerCase();
  if (WEIGHT_SUFFIXES.some((suffix) => name.endsWith(suffix))) {
    // training_args.bin and the like are not weights, but nothing reads them as such either.
    return MODELPACK.weight;
  }
  if (name.endsWith('.py')) return MODELPACK.code;
  if (DOC_NAMES.test(name) || DOC_SUFFIXES.some((suffix) => name.endsWith(suffix))) return MODELPACK.doc;
  return MODELPACK.weightConfig;
}

/** One model file as a layer: its ModelPack type, its path (ModelPack's annotation and the OCI title). */
export function modelFileLayerDescriptor(
  digest: string,
  size: number,
  path: string,
  mode?: number,
): Descriptor {
  const annotations: Record<string, string> = { [ANNOTATION.filepath]: path, [ANNOTATION.title]: path };
  if (mode === 0o755) annotations[ANNOTATION.mode] = '0755';
  return { mediaType: modelLayerMediaType(path), digest, size, annotations };
}

/** The model config blob (`application/vnd.cncf.model.config.v1+json`). */
export function modelConfigBlob(model: ModelDescription, layers: Descriptor[]): Blob {
  const optional = <T>(key: string, value: T | undefined) => (value === undefined ? {} : { [key]: value });
  const config = {
    descriptor: {
      name: model.name,
      ...optional('version', model.version),
      ...optional('revision', model.revision),
      ...optional('licenses', model.licenses?.length ? model.licenses : undefined),
    },
    config: {
      ...optional('architecture', model.architecture),
      ...optional('format', model.format),
      ...optional('paramSize', model.paramSize),
      ...optional('precision', model.precision),
    },
    // A raw layer is its own uncompressed content: its DiffID is its digest.
    modelfs: { type: 'layers', diffIds: layers.map((layer) => layer.digest) },
  };
  return blobOf(MODELPACK.config, canonicalJsonBytes(config));
}

/**
 * The manifest of a model component, or of an adapter (a LoRA is model weights too: ModelPack
 * has no type of its own for it, so KitOps and registries read it as a model, and `extra`
 * annotations name the base it is bound to): an OCI image manifest with ModelPack's
 * artifactType and config.
 */
export function modelManifest(
  component: { name: string },
  config: Descriptor,
  layers: Descriptor[],
  extra: Record<string, string> = {},
): Blob {
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE.ociManifest,
    artifactType: MODELPACK.artifactType,
    config,
    layers,
    annotations: { ...extra, [ANNOTATION.component]: component.name },
  };
  return blobOf(MEDIA_TYPE.ociManifest, canonicalJsonBytes(manifest), {
    artifactType: MODELPACK.artifactType,
  });
}
