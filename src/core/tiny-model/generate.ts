/**
 * A tiny llama-architecture model with random weights, generated rather than downloaded:
 * Hugging Face is out of reach in tests and in the demo, and a fixed seed makes the file
 * byte-identical everywhere, so its digest can be pinned like any real model's.
 * The weights mean nothing; the file exercises the whole serving path (load, tokenize,
 * chat template, generation, embeddings) in well under a second on one CPU thread.
 */
import { type GgufTensor, type GgufValue, writeGguf } from './gguf-writer.js';

/** The facts tests and the demo recipe rely on. */
export const TINY_MODEL = {
  id: 'apertus-demo-tiny',
  fileName: 'tiny-llama.gguf',
  name: 'apertus tiny llama (random weights)',
  architecture: 'llama',
  embeddingLength: 64,
  contextLength: 2048,
  blockCount: 2,
  headCount: 4,
  headCountKv: 2,
  feedForwardLength: 128,
  rmsEpsilon: 1e-5,
  ropeFreqBase: 10000,
  defaultSeed: 1,
  bosTokenId: 1,
  eosTokenId: 2,
  unknownTokenId: 0,
  vocabSize: 441,
} as const;

/** ChatML, the shape node-llama-cpp and llama.cpp both recognise. */
export const TINY_MODEL_CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** llama_token_type values from llama.cpp. */
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, byte: 6 } as const;

/** SentencePiece's word-boundary marker; the llama tokenizer maps spaces to it. */
const SPACE = '\u2581';

interface Vocabulary {
  tokens: string[];
  scores: number[];
  types: number[];
}

/**
 * A SentencePiece-style vocabulary: special tokens, 256 byte-fallback tokens (so any
 * text tokenizes), then single ASCII characters and a few merges the tokenizer can reach.
 */
function buildVocabulary(): Vocabulary {
  const vocab: Vocabulary = { tokens: [], scores: [], types: [] };
  const add = (token: string, score: number, type: number): void => {
    vocab.tokens.push(token);
    vocab.scores.push(score);
    vocab.types.push(type);
  };
  add('<unk>', 0, TOKEN_TYPE.unknown);
  add('<s>', 0, TOKEN_TYPE.control);
  add('</s>', 0, TOKEN_TYPE.control);
  add('<|im_start|>', 0, TOKEN_TYPE.control);
  add('<|im_end|>', 0, TOKEN_TYPE.control);
  for (let byte = 0; byte < 256; byte++) {
    add(`<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`, 0, TOKEN_TYPE.byte);
  }
  const pieces: string[] = [SPACE];
  for (let code = 0x21; code <= 0x7e; code++) pieces.push(String.fromCharCode(code));
  for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789') pieces.push(SPACE + c);
  pieces.push('th', 'he', 'in', 'er', 'an', 're', 'on', 'at', 'en', 'nd', 'or', 'es', 'is', 'it', 'al', 'ar');
  pieces.push(
    `${SPACE}th`,
    `${SPACE}the`,
    `${SPACE}in`,
    `${SPACE}an`,
    `${SPACE}and`,
    `${SPACE}is`,
    `${SPACE}it`,
  );
  // Earlier pieces win merges: SentencePiece merges the highest-scoring pair first.
  pieces.forEach((piece, index) => {
    add(piece, -index, TOKEN_TYPE.normal);
  });
  return vocab;
}

/** mulberry32: a small, well-mixed 32-bit PRNG; identical sequences on every platform. */
function createRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Generate the tiny model as GGUF bytes. Same seed, same bytes; the default seed is the
 * one the demo bundle ships.
 */
export function generateTinyModel(options: { seed?: number } = {}): Buffer {
  const seed = options.seed ?? TINY_MODEL.defaultSeed;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`seed must be an integer in [0, 2^32), got ${seed}`);
  }
  const random = createRandom(seed);
  const vocab = buildVocabulary();
  const m = TINY_MODEL;
  const headDim = m.embeddingLength / m.headCount;
  const kvDim = headDim * m.headCountKv;
  const nVocab = vocab.tokens.length;
  if (nVocab !== m.vocabSize)
    throw new Error(`tiny model vocabulary has ${nVocab} tokens, facts say ${m.vocabSize}`);

  // Uniform in +-1/sqrt(fanIn) keeps activations bounded, so logits never overflow f16.
  const matrix = (name: string, fanIn: number, rows: number): GgufTensor => {
    const values = new Float32Array(fanIn * rows);
    const scale = 1 / Math.sqrt(fanIn);
    for (let i = 0; i < values.length; i++) values[i] = (random() * 2 - 1) * scale;
    return { name, dims: [fanIn, rows], type: 'f16', values };
  };
  // Norm weights stay f32, as llama.cpp's converters write them.
  const norm = (name: string): GgufTensor => ({
    name,
    dims: [m.embeddingLength],
    type: 'f32',
    values: new Float32Array(m.embeddingLength).fill(1),
  });

  const tensors: GgufTensor[] = [matrix('token_embd.weight', m.embeddingLength, nVocab)];
  for (let layer = 0; layer < m.blockCount; layer++) {
    const blk = `blk.${layer}`;
    tensors.push(
      norm(`${blk}.attn_norm.weight`),
      matrix(`${blk}.attn_q.weight`, m.embeddingLength, m.embeddingLength),
      matrix(`${blk}.attn_k.weight`, m.embeddingLength, kvDim),
      matrix(`${blk}.attn_v.weight`, m.embeddingLength, kvDim),
      matrix(`${blk}.attn_output.weight`, m.embeddingLength, m.embeddingLength),
      norm(`${blk}.ffn_norm.weight`),
      matrix(`${blk}.ffn_gate.weight`, m.embeddingLength, m.feedForwardLength),
      matrix(`${blk}.ffn_up.weight`, m.embeddingLength, m.feedForwardLength),
      matrix(`${blk}.ffn_down.weight`, m.feedForwardLength, m.embeddingLength),
    );
  }
  tensors.push(norm('output_norm.weight'), matrix('output.weight', m.embeddingLength, nVocab));

  const u32 = (value: number): GgufValue => ({ type: 'uint32', value });
  const metadata: Array<readonly [string, GgufValue]> = [
    ['general.architecture', { type: 'string', value: m.architecture }],
    ['general.name', { type: 'string', value: m.name }],
    ['general.license', { type: 'string', value: 'apache-2.0' }],
    // 1 = LLAMA_FTYPE_MOSTLY_F16
    ['general.file_type', u32(1)],
    ['llama.vocab_size', u32(nVocab)],
    ['llama.context_length', u32(m.contextLength)],
    ['llama.embedding_length', u32(m.embeddingLength)],
    ['llama.block_count', u32(m.blockCount)],
    ['llama.feed_forward_length', u32(m.feedForwardLength)],
    ['llama.attention.head_count', u32(m.headCount)],
    ['llama.attention.head_count_kv', u32(m.headCountKv)],
    ['llama.attention.layer_norm_rms_epsilon', { type: 'float32', value: m.rmsEpsilon }],
    ['llama.rope.dimension_count', u32(headDim)],
    ['llama.rope.freq_base', { type: 'float32', value: m.ropeFreqBase }],
    ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: vocab.tokens }],
    ['tokenizer.ggml.scores', { type: 'array', itemType: 'float32', value: vocab.scores }],
    ['tokenizer.ggml.token_type', { type: 'array', itemType: 'int32', value: vocab.types }],
    ['tokenizer.ggml.bos_token_id', u32(m.bosTokenId)],
    ['tokenizer.ggml.eos_token_id', u32(m.eosTokenId)],
    ['tokenizer.ggml.unknown_token_id', u32(m.unknownTokenId)],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }],
    ['tokenizer.ggml.add_eos_token', { type: 'bool', value: false }],
    ['tokenizer.chat_template', { type: 'string', value: TINY_MODEL_CHAT_TEMPLATE }],
  ];
  return writeGguf({ metadata, tensors });
}

/** The facts of the tiny LoRA adapter for the tiny model: what the demo recipe and tests rely on. */
export const TINY_LORA = {
  id: 'apertus-demo-tiny-lora',
  fileName: 'tiny-lora.gguf',
  name: 'apertus tiny lora (random weights)',
  rank: 8,
  alpha: 16,
  defaultSeed: 1,
  /** The base weights it adapts, in each block, plus the output projection. */
  blockTargets: ['attn_q', 'attn_v', 'ffn_down'],
} as const;

/**
 * A LoRA adapter for the tiny model, as llama.cpp reads one (src/llama-adapter.cpp):
 * `general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha`, the base's
 * architecture, and for each adapted weight W (ggml dims [in, out]) a pair
 * `W.lora_a` [in, rank] and `W.lora_b` [rank, out], so that W + (alpha / rank) * B A
 * replaces W. Random values large enough that greedy decoding differs from the base's,
 * small enough that nothing overflows. Same seed, same bytes.
 */
export function generateTinyLora(options: { seed?: number } = {}): Buffer {
  const seed = options.seed ?? TINY_LORA.defaultSeed;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`seed must be an integer in [0, 2^32), got ${seed}`);
  }
  // Another stream than the model's own for the same seed.
  const random = createRandom((seed ^ 0x9e3779b9) >>> 0);
  const m = TINY_MODEL;
  const r = TINY_LORA.rank;
  const headDim = m.embeddingLength / m.headCount;
  const kvDim = headDim * m.headCountKv;
  const shapes: Record<(typeof TINY_LORA.blockTargets)[number], [number, number]> = {
    attn_q: [m.embeddingLength, m.embeddingLength],
    attn_v: [m.embeddingLength, kvDim],
    ffn_down: [m.feedForwardLength, m.embeddingLength],
  };
  const values = (count: number, scale: number): Float32Array => {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = (random() * 2 - 1) * scale;
    return out;
  };
  const pair = (weight: string, fanIn: number, rows: number): GgufTensor[] => [
    {
      name: `${weight}.lora_a`,
      dims: [fanIn, r],
      type: 'f32',
      values: values(fanIn * r, 1 / Math.sqrt(fanIn)),
    },
    { name: `${weight}.lora_b`, dims: [r, rows], type: 'f32', values: values(r * rows, 1 / Math.sqrt(r)) },
  ];
  const tensors: GgufTensor[] = [];
  for (let layer = 0; layer < m.blockCount; layer++) {
    for (const target of TINY_LORA.blockTargets) {
      const [fanIn, rows] = shapes[target];
      tensors.push(...pair(`blk.${layer}.${target}.weight`, fanIn, rows));
    }
  }
  tensors.push(...pair('output.weight', m.embeddingLength, m.vocabSize));
  const metadata: Array<readonly [string, GgufValue]> = [
    ['general.architecture', { type: 'string', value: m.architecture }],
    ['general.type', { type: 'string', value: 'adapter' }],
    ['general.name', { type: 'string', value: TINY_LORA.name }],
    ['general.license', { type: 'string', value: 'apache-2.0' }],
    ['adapter.type', { type: 'string', value: 'lora' }],
    ['adapter.lora.alpha', { type: 'float32', value: TINY_LORA.alpha }],
  ];
  return writeGguf({ metadata, tensors });
}
