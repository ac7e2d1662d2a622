/**
 * The numbers the fit calculation needs about a model, from a Hugging Face config.json or
 * a GGUF header: layers, heads, KV heads, head size, the served dtype and the longest
 * context it supports.
 */
import { z } from 'zod';
import { ApertusError } from '../errors.js';
import { describeIssues } from '../spec/zod-issues.js';
import type { ServedDtype } from './compute-capability.js';
import { type GgufHeader, ggufNumber, ggufString } from './gguf-metadata.js';

export interface ModelShape {
  format: 'hf-config' | 'gguf';
  /** Where it was read, for the report ('model/config.json', a .gguf path). */
  source: string;
  /** model_type or general.architecture, e.g. 'apertus', 'llama'. */
  architecture: string;
  hiddenSize: number;
  numLayers: number;
  numAttentionHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  intermediateSize?: number;
  /** The longest context the model supports; vLLM's default max_model_len (runtime-facts 3.3). */
  maxPositionEmbeddings?: number;
  tieWordEmbeddings: boolean;
  /** Three MLP matrices (SwiGLU) or two (Apertus' xIELU MLP has no gate, runtime-facts 1.2). */
  gatedMlp: boolean;
  experts?: number;
  /** The dtype weights are served in, which sets the compute capability needed. */
  dtype: ServedDtype;
  /** Bytes per weight as served: bf16 2, fp8 1, int4 about 0.5 (runtime-facts 3.5). */
  bytesPerParameter: number;
  /** Quantization named by the config, e.g. 'fp8', 'awq 4-bit'. */
  quantization?: string;
}

const positiveInt = z.number().int().positive();

/**
 * The fields of config.json read here; everything else passes through. Alternative names
 * (n_embd, n_layer, n_head) cover GPT-2-style configs.
 */
const textConfigSchema = z.looseObject({
  model_type: z.string().optional(),
  hidden_size: positiveInt.optional(),
  n_embd: positiveInt.optional(),
  num_hidden_layers: positiveInt.optional(),
  n_layer: positiveInt.optional(),
  num_attention_heads: positiveInt.optional(),
  n_head: positiveInt.optional(),
  num_key_value_heads: positiveInt.nullish(),
  head_dim: positiveInt.nullish(),
  vocab_size: positiveInt.optional(),
  intermediate_size: positiveInt.nullish(),
  moe_intermediate_size: positiveInt.nullish(),
  num_local_experts: positiveInt.nullish(),
  num_experts: positiveInt.nullish(),
  max_position_embeddings: positiveInt.nullish(),
  n_positions: positiveInt.nullish(),
  tie_word_embeddings: z.boolean().nullish(),
  hidden_act: z.string().nullish(),
  torch_dtype: z.string().nullish(),
  dtype: z.string().nullish(),
  quantization_config: z.looseObject({}).nullish(),
});

const configSchema = textConfigSchema.extend({ text_config: textConfigSchema.nullish() });

/** Architectures whose MLP has two matrices, not SwiGLU's three. */
const UNGATED_MLP = new Set(['apertus', 'gpt2', 'gpt_neox', 'gptj', 'bert', 'xlm-roberta', 'phi']);

function dtypeFromName(name: string | null | undefined): ServedDtype | undefined {
  switch (name?.toLowerCase()) {
    case 'bfloat16':
    case 'bf16':
      return 'bfloat16';
    case 'float16':
    case 'half':
    case 'fp16':
      return 'float16';
    case 'float32':
    case 'float':
    case 'fp32':
      return 'float32';
    default:
      return undefined;
  }
}

interface Quantization {
  name: string;
  dtype: ServedDtype;
  bytesPerParameter: number;
}

/** Weight bits from a quantization_config: fp8 and 8/4-bit integer schemes. */
function readQuantization(config: Record<string, unknown> | null | undefined): Quantization | undefined {
  if (!config) return undefined;
  const method = String(config.quant_method ?? 'unknown').toLowerCase();
  if (method === 'fp8') return { name: 'fp8', dtype: 'fp8', bytesPerParameter: 1 };
  let bits = typeof config.bits === 'number' ? config.bits : undefined;
  let floatWeights = false;
  if (method === 'compressed-tensors') {
    const groups = Object.values((config.config_groups as Record<string, unknown> | undefined) ?? {});
    const weights = (groups[0] as { weights?: { num_bits?: unknown; type?: unknown } } | undefined)?.weights;
    if (typeof weights?.num_bits === 'number') bits = weights.num_bits;
    floatWeights = weights?.type === 'float';
  }
  if (method === 'bitsandbytes')
    bits = config.load_in_4bit === true ? 4 : config.load_in_8bit === true ? 8 : bits;
  if (bits === 8 && floatWeights) return { name: `${method} fp8`, dtype: 'fp8', bytesPerParameter: 1 };
  if (bits === 8) return { name: `${method} 8-bit`, dtype: 'int8', bytesPerParameter: 1 };
  if (bits !== undefined && bits <= 4)
    return { name: `${method} ${bits}-bit`, dtype: 'int4', bytesPerParameter: bits / 8 };
  return { name: method, dtype: 'bfloat16', bytesPerParameter: 2 };
}

/** A model's shape from its config.json; `source` names the file in errors. */
export function modelShapeFromConfig(json: unknown, source: string): ModelShape {
  const parsed = configSchema.safeParse(json);
  if (!parsed.success) {
    throw new ApertusError(
      'model-config-invalid',
      `${source} is not a usable model config: ${describeIssues(parsed.error)}.`,
      {
        kind: 'operation',
        hint: "The fit check reads hidden_size, num_hidden_layers, num_attention_heads and vocab_size from config.json; check the file is the model's own.",
      },
    );
  }
  const top = parsed.data;
  // Multimodal configs (Apertus v1.5, runtime-facts 1.1) nest the language model's fields.
  const text = top.text_config && top.hidden_size === undefined ? { ...top, ...top.text_config } : top;
  const hiddenSize = text.hidden_size ?? text.n_embd;
  const numLayers = text.num_hidden_layers ?? text.n_layer;
  const numAttentionHeads = text.num_attention_heads ?? text.n_head;
  const missing = [
    hiddenSize === undefined && 'hidden_size',
    numLayers === undefined && 'num_hidden_layers',
    numAttentionHeads === undefined && 'num_attention_heads',
    text.vocab_size === undefined && 'vocab_size',
  ].filter((m): m is string => typeof m === 'string');
  if (
    hiddenSize === undefined ||
    numLayers === undefined ||
    numAttentionHeads === undefined ||
    text.vocab_size === undefined
  ) {
    throw new ApertusError('model-config-invalid', `${source} lacks ${missing.join(', ')}.`, {
      kind: 'operation',
      hint: "The fit check needs these fields of a decoder model's config.json; check the file is the model's own.",
    });
  }
  const architecture = text.model_type ?? top.model_type ?? 'unknown';
  const quantization = readQuantization(text.quantization_config ?? top.quantization_config);
  // vLLM's "auto" dtype serves float32 checkpoints in 16 bits (runtime-facts 3.3: auto keeps bf16 for bf16).
  const declared =
    dtypeFromName(text.dtype ?? text.torch_dtype ?? top.dtype ?? top.torch_dtype) ?? 'bfloat16';
  const unquantised: ServedDtype = declared === 'float32' ? 'float16' : declared;
  const experts = text.num_local_experts ?? text.num_experts ?? undefined;
  const maxPositions = text.max_position_embeddings ?? text.n_positions ?? undefined;
  const intermediate = experts
    ? (text.moe_intermediate_size ?? text.intermediate_size)
    : text.intermediate_size;
  const shape: ModelShape = {
    format: 'hf-config',
    source,
    architecture,
    hiddenSize,
    numLayers,
    numAttentionHeads,
    // vLLM: head_dim = hidden_size // heads when the config has none (runtime-facts 1.2).
    numKvHeads: text.num_key_value_heads ?? numAttentionHeads,
    headDim: text.head_dim ?? Math.floor(hiddenSize / numAttentionHeads),
    vocabSize: text.vocab_size,
    // An absent tie_word_embeddings counts lm_head separately: the larger, safer estimate.
    tieWordEmbeddings: text.tie_word_embeddings ?? false,
    gatedMlp: !UNGATED_MLP.has(architecture) && text.hidden_act !== 'xielu',
    dtype: quantization?.dtype ?? unquantised,
    bytesPerParameter: quantization?.bytesPerParameter ?? 2,
  };
  if (intermediate) shape.intermediateSize = intermediate;
  if (maxPositions) shape.maxPositionEmbeddings = maxPositions;
  if (experts) shape.experts = experts;
  if (quantization) shape.quantization = quantization.name;
  return shape;
}

/** A model's shape from its GGUF header (`<arch>.block_count` and friends). */
export function modelShapeFromGguf(header: GgufHeader, source: string): ModelShape {
  const arch = ggufString(header, 'general.architecture') ?? 'llama';
  const n = (key: string) => ggufNumber(header, `${arch}.${key}`);
  const hiddenSize = n('embedding_length');
  const numLayers = n('block_count');
  const numAttentionHeads = n('attention.head_count');
  const tokens = header.metadata.get('tokenizer.ggml.tokens');
  const vocabSize = n('vocab_size') ?? (typeof tokens === 'object' ? tokens.arrayLength : undefined);
  if (!hiddenSize || !numLayers || !numAttentionHeads) {
    throw new ApertusError(
      'gguf-shape-missing',
      `${source} lacks ${arch}.embedding_length, ${arch}.block_count or ${arch}.attention.head_count.`,
      { kind: 'operation', hint: 'Convert the model with a current llama.cpp, which writes these keys.' },
    );
  }
  const shape: ModelShape = {
    format: 'gguf',
    source,
    architecture: arch,
    hiddenSize,
    numLayers,
    numAttentionHeads,
    numKvHeads: n('attention.head_count_kv') ?? numAttentionHeads,
    headDim: n('attention.key_length') ?? Math.floor(hiddenSize / numAttentionHeads),
    vocabSize: vocabSize ?? 0,
    tieWordEmbeddings: false,
    gatedMlp: arch !== 'apertus',
    // llama.cpp's KV cache is f16 by default; the weights' own bytes come from the file.
    dtype: 'float16',
    bytesPerParameter: 2,
  };
  const ff = n('feed_forward_length');
  if (ff) shape.intermediateSize = ff;
  const context = n('context_length');
  if (context) shape.maxPositionEmbeddings = context;
  return shape;
}

/**
 * Parameters from the shape, for when no weight files are at hand: embeddings (and an
 * untied lm_head), attention q/k/v/o, the MLP (2 or 3 matrices, times experts), norms.
 * For Apertus-8B this gives 8.05 B, as runtime-facts 1.2 derives.
 */
export function estimateParameters(shape: ModelShape): number {
  const h = shape.hiddenSize;
  const embeddings = shape.vocabSize * h * (shape.tieWordEmbeddings ? 1 : 2);
  const q = h * shape.numAttentionHeads * shape.headDim;
  const kv = 2 * h * shape.numKvHeads * shape.headDim;
  const o = shape.numAttentionHeads * shape.headDim * h;
  const mlp = (shape.gatedMlp ? 3 : 2) * h * (shape.intermediateSize ?? 4 * h) * (shape.experts ?? 1);
  const norms = 2 * h;
  return embeddings + shape.numLayers * (q + kv + o + mlp + norms) + h;
}

/**
 * KV cache bytes per token: 2 (K and V) x layers x KV heads x head size x bytes, as
 * vLLM's `_get_cache_block_size` counts (runtime-facts 3.5). Apertus-8B bf16: 131072 B.
 */
export function kvBytesPerToken(shape: ModelShape, kvDtypeBytes = 2): number {
  return 2 * shape.numLayers * shape.numKvHeads * shape.headDim * kvDtypeBytes;
}
