import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { getLlama, LlamaLogLevel, readGgufFileInfo } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  generateTinyLora,
  generateTinyModel,
  TINY_LORA,
  TINY_MODEL,
  TINY_MODEL_CHAT_TEMPLATE,
} from '../../src/core/tiny-model/generate.js';
import { float32ToFloat16Bits } from '../../src/core/tiny-model/gguf-writer.js';

const COMMITTED_MODEL = path.resolve(import.meta.dirname, '../../bundles/demo/model', TINY_MODEL.fileName);
const COMMITTED_LORA = path.resolve(import.meta.dirname, '../../bundles/demo/adapter', TINY_LORA.fileName);

describe('generateTinyModel', () => {
  it('is deterministic per seed and differs between seeds', () => {
    const a = generateTinyModel({ seed: 1 });
    expect(generateTinyModel({ seed: 1 }).equals(a)).toBe(true);
    expect(generateTinyModel().equals(a)).toBe(true);
    expect(generateTinyModel({ seed: 2 }).equals(a)).toBe(false);
  });

  it('is about 0.3 MB', () => {
    const size = generateTinyModel().length;
    expect(size).toBeGreaterThan(200_000);
    expect(size).toBeLessThan(400_000);
  });

  it('matches the model committed for the demo bundle byte for byte', async () => {
    const committed = await readFile(COMMITTED_MODEL);
    expect(committed.equals(generateTinyModel({ seed: 1 }))).toBe(true);
  });

  it('refuses seeds that are not 32-bit unsigned integers', () => {
    expect(() => generateTinyModel({ seed: -1 })).toThrow(RangeError);
    expect(() => generateTinyModel({ seed: 1.5 })).toThrow(RangeError);
  });
});

describe('the GGUF header', () => {
  let dir: string;
  let file: string;
  let bytes: Buffer;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'apertus-tiny-model-'));
    file = path.join(dir, TINY_MODEL.fileName);
    bytes = generateTinyModel({ seed: 7 });
    await writeFile(file, bytes);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const expectedTensors = 3 + TINY_MODEL.blockCount * 9;

  it('starts with the GGUF magic, version 3 and the counts', () => {
    expect(bytes.subarray(0, 4).toString('ascii')).toBe('GGUF');
    expect(bytes.readUInt32LE(4)).toBe(3);
    expect(bytes.readBigUInt64LE(8)).toBe(BigInt(expectedTensors));
    expect(bytes.readBigUInt64LE(16)).toBe(24n);
    expect(bytes.length % 32).toBe(0);
  });

  // node-llama-cpp's own GGUF reader is an independent parser of what we wrote.
  it('parses back with node-llama-cpp, metadata and tensors as written', async () => {
    const info = await readGgufFileInfo(file, { readTensorInfo: true });
    expect(info.version).toBe(3);
    expect(info.tensorCount).toBe(expectedTensors);
    const m = info.metadata;
    expect(m.general.architecture).toBe('llama');
    expect(m.general.name).toBe(TINY_MODEL.name);
    const llama = m.llama as unknown as Record<string, unknown> & {
      attention: Record<string, number>;
      rope: Record<string, number>;
    };
    expect(llama.context_length).toBe(TINY_MODEL.contextLength);
    expect(llama.embedding_length).toBe(TINY_MODEL.embeddingLength);
    expect(llama.block_count).toBe(TINY_MODEL.blockCount);
    expect(llama.feed_forward_length).toBe(TINY_MODEL.feedForwardLength);
    expect(llama.attention.head_count).toBe(TINY_MODEL.headCount);
    expect(llama.attention.head_count_kv).toBe(TINY_MODEL.headCountKv);
    expect(llama.attention.layer_norm_rms_epsilon).toBeCloseTo(TINY_MODEL.rmsEpsilon, 10);
    expect(llama.rope.dimension_count).toBe(TINY_MODEL.embeddingLength / TINY_MODEL.headCount);
    expect(llama.rope.freq_base).toBe(TINY_MODEL.ropeFreqBase);

    const tokenizer = m.tokenizer;
    expect(tokenizer.ggml.model).toBe('llama');
    const tokens = tokenizer.ggml.tokens as string[];
    expect(tokens).toHaveLength(TINY_MODEL.vocabSize);
    expect(tokens.slice(0, 3)).toEqual(['<unk>', '<s>', '</s>']);
    expect(tokens).toContain('<0x00>');
    expect(tokens).toContain('<0xFF>');
    expect(tokens.filter((t) => /^<0x[0-9A-F]{2}>$/.test(t))).toHaveLength(256);
    expect(tokens).toContain('a');
    expect(new Set(tokens).size).toBe(tokens.length);
    expect(tokenizer.ggml.scores).toHaveLength(tokens.length);
    expect(tokenizer.ggml.token_type).toHaveLength(tokens.length);
    expect(tokenizer.ggml.bos_token_id).toBe(TINY_MODEL.bosTokenId);
    expect(tokenizer.ggml.eos_token_id).toBe(TINY_MODEL.eosTokenId);
    expect(tokenizer.chat_template).toBe(TINY_MODEL_CHAT_TEMPLATE);

    const tensors = info.tensorInfo ?? [];
    const embedding = tensors.find((t) => t.name === 'token_embd.weight');
    expect(embedding?.dimensions.map(Number)).toEqual([TINY_MODEL.embeddingLength, TINY_MODEL.vocabSize]);
    expect(tensors.map((t) => t.name)).toContain(`blk.${TINY_MODEL.blockCount - 1}.ffn_down.weight`);
    expect(tensors.every((t) => Number(t.offset) % 32 === 0)).toBe(true);
  });
});

describe('generateTinyLora', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'apertus-tiny-lora-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is deterministic per seed, differs between seeds, and is the adapter the demo bundle ships', async () => {
    const a = generateTinyLora({ seed: 1 });
    expect(generateTinyLora().equals(a)).toBe(true);
    expect(generateTinyLora({ seed: 2 }).equals(a)).toBe(false);
    expect((await readFile(COMMITTED_LORA)).equals(a)).toBe(true);
    expect(a.length).toBeLessThan(64_000);
    expect(() => generateTinyLora({ seed: -1 })).toThrow(RangeError);
  });

  // The names and shapes llama.cpp's llama_adapter_lora_init checks (src/llama-adapter.cpp).
  it('is a GGUF LoRA adapter for the tiny model: its type, alpha, and an a/b pair per adapted weight', async () => {
    const file = path.join(dir, 'header.gguf');
    await writeFile(file, generateTinyLora({ seed: 3 }));
    const info = await readGgufFileInfo(file, { readTensorInfo: true });
    const general = info.metadata.general as unknown as Record<string, unknown>;
    expect(general.architecture).toBe(TINY_MODEL.architecture);
    expect(general.type).toBe('adapter');
    const adapter = (info.metadata as unknown as { adapter: { type: string; lora: { alpha: number } } })
      .adapter;
    expect(adapter).toEqual({ type: 'lora', lora: { alpha: TINY_LORA.alpha } });
    const shapes = new Map((info.tensorInfo ?? []).map((t) => [t.name, t.dimensions.map(Number)]));
    const kv = (TINY_MODEL.embeddingLength / TINY_MODEL.headCount) * TINY_MODEL.headCountKv;
    const r = TINY_LORA.rank;
    expect(shapes.get('blk.0.attn_q.weight.lora_a')).toEqual([TINY_MODEL.embeddingLength, r]);
    expect(shapes.get('blk.0.attn_q.weight.lora_b')).toEqual([r, TINY_MODEL.embeddingLength]);
    expect(shapes.get('blk.1.attn_v.weight.lora_b')).toEqual([r, kv]);
    expect(shapes.get('blk.1.ffn_down.weight.lora_a')).toEqual([TINY_MODEL.feedForwardLength, r]);
    expect(shapes.get('output.weight.lora_b')).toEqual([r, TINY_MODEL.vocabSize]);
    expect(shapes.size).toBe(2 * (TINY_MODEL.blockCount * TINY_LORA.blockTargets.length + 1));
  });

  it('loads over the tiny model in llama.cpp, and greedy decoding with it differs from the base', async () => {
    const modelPath = path.join(dir, TINY_MODEL.fileName);
    const loraPath = path.join(dir, TINY_LORA.fileName);
    await writeFile(modelPath, generateTinyModel());
    await writeFile(loraPath, generateTinyLora());
    const llama = await getLlama({
      gpu: false,
      build: 'never',
      skipDownload: true,
      usePrebuiltBinaries: true,
      progressLogs: false,
      maxThreads: 1,
      logLevel: LlamaLogLevel.error,
    });
    try {
      const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
      const greedy = async (lora?: string): Promise<number[]> => {
        const context = await model.createContext({
          contextSize: 128,
          threads: 1,
          ...(lora ? { lora: { adapters: [{ filePath: lora }] } } : {}),
        });
        const tokens: number[] = [];
        for await (const token of context
          .getSequence()
          .evaluate(model.tokenize('Say hello.'), { temperature: 0 })) {
          tokens.push(token);
          if (tokens.length === 8) break;
        }
        await context.dispose();
        return tokens;
      };
      const base = await greedy();
      const adapted = await greedy(loraPath);
      expect(base).toHaveLength(8);
      expect(adapted).toHaveLength(8);
      expect(adapted).not.toEqual(base);
      // Same adapter, same tokens: the difference is the adapter's, not noise.
      expect(await greedy(loraPath)).toEqual(adapted);
    } finally {
      await llama.dispose();
    }
  }, 60_000);
});

describe('float32ToFloat16Bits', () => {
  it('converts exact values, rounds to nearest even and saturates', () => {
    expect(float32ToFloat16Bits(0)).toBe(0x0000);
    expect(float32ToFloat16Bits(-0)).toBe(0x8000);
    expect(float32ToFloat16Bits(1)).toBe(0x3c00);
    expect(float32ToFloat16Bits(-2)).toBe(0xc000);
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(float32ToFloat16Bits(1e6)).toBe(0x7c00);
    expect(float32ToFloat16Bits(Number.NaN) & 0x7c00).toBe(0x7c00);
    // Smallest subnormal, and 1 + 2^-11 (exactly halfway) rounding down to even.
    expect(float32ToFloat16Bits(2 ** -24)).toBe(0x0001);
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00);
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
  });
});
