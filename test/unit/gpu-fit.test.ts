import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fitDevices } from '../../src/core/check/evaluate-gpu.js';
import { judgeCapability } from '../../src/core/gpu/compute-capability.js';
import {
  compareVersions,
  driverRequirement,
  imageCudaFromConfig,
  imageCudaFromEnv,
  judgeDriver,
  newestCudaFor,
} from '../../src/core/gpu/cuda-driver.js';
import {
  planCpuFit,
  planFit,
  suggestedContext,
  validTensorParallelSizes,
  vllmLoraBytes,
} from '../../src/core/gpu/fit.js';
import { readGgufHeader } from '../../src/core/gpu/gguf-metadata.js';
import {
  estimateParameters,
  kvBytesPerToken,
  modelShapeFromConfig,
  modelShapeFromGguf,
} from '../../src/core/gpu/model-shape.js';
import { readSafetensorsHeader } from '../../src/core/gpu/safetensors-header.js';
import { GIB, MIB } from '../../src/core/gpu/units.js';
import { generateTinyModel, TINY_MODEL } from '../../src/core/tiny-model/generate.js';
import { gpuFixture } from '../fixtures/gpu/gpu-fixture.js';

const MODELS = path.resolve('test/fixtures/models');
const config = (name: string) =>
  modelShapeFromConfig(
    JSON.parse(readFileSync(path.join(MODELS, name, 'config.json'), 'utf8')),
    `${name}/config.json`,
  );
const APERTUS_8B = config('apertus-8b-instruct-2509');
const APERTUS_70B = config('apertus-70b-instruct-2509');

function bufferReader(buffer: Buffer) {
  return async (offset: number, length: number) => buffer.subarray(offset, offset + length);
}

describe('model shape and the published Apertus figures (runtime-facts 1.2, 3.5)', () => {
  it('Apertus-8B bf16: about 8.05 B parameters, 16.1 GB of weights, 128 KiB of KV per token', () => {
    expect(APERTUS_8B).toMatchObject({
      architecture: 'apertus',
      numLayers: 32,
      numAttentionHeads: 32,
      numKvHeads: 8,
      headDim: 128, // derived: the config has no head_dim
      gatedMlp: false, // xIELU MLP: up and down only
      tieWordEmbeddings: false,
      dtype: 'bfloat16',
      maxPositionEmbeddings: 65536,
    });
    const parameters = estimateParameters(APERTUS_8B);
    expect(parameters / 1e9).toBeCloseTo(8.05, 2);
    expect((parameters * 2) / 1e9).toBeCloseTo(16.1, 1);
    expect(kvBytesPerToken(APERTUS_8B)).toBe(131072);
    // 8 GiB for one sequence of the full 65,536 tokens.
    expect(kvBytesPerToken(APERTUS_8B) * 65536).toBe(8 * GIB);
  });

  it('Apertus-70B bf16: about 70.6 B parameters (141 GB) and 320 KiB of KV per token', () => {
    expect(estimateParameters(APERTUS_70B) / 1e9).toBeCloseTo(70.6, 1);
    expect(kvBytesPerToken(APERTUS_70B)).toBe(320 * 1024);
    expect((kvBytesPerToken(APERTUS_70B) * 65536) / GIB).toBe(20);
  });

  it('TP sizes that divide 32 heads and 8 KV heads (or replicate them): 1, 2, 4, 8, 16, 32', () => {
    expect(validTensorParallelSizes(APERTUS_8B, 32)).toEqual([1, 2, 4, 8, 16, 32]);
    expect(validTensorParallelSizes({ ...APERTUS_8B, numAttentionHeads: 12, numKvHeads: 4 }, 8)).toEqual([
      1, 2, 4,
    ]);
  });

  it('reads an fp8 quantization_config as 1 byte per weight that needs compute capability 8.9', () => {
    const shape = modelShapeFromConfig(
      {
        ...JSON.parse(readFileSync(path.join(MODELS, 'apertus-8b-instruct-2509', 'config.json'), 'utf8')),
        quantization_config: {
          quant_method: 'compressed-tensors',
          config_groups: { group_0: { weights: { num_bits: 8, type: 'float' } } },
        },
      },
      'fp8/config.json',
    );
    expect(shape).toMatchObject({ dtype: 'fp8', bytesPerParameter: 1 });
  });

  it('names the file and the missing fields of an unusable config', () => {
    expect(() => modelShapeFromConfig({ hidden_size: 'wide' }, 'x/config.json')).toThrow(
      /x\/config.json.*hidden_size/,
    );
    expect(() => modelShapeFromConfig({ hidden_size: 64 }, 'x/config.json')).toThrow(
      'x/config.json lacks num_hidden_layers, num_attention_heads, vocab_size.',
    );
  });
});

describe('fit on the H100 fixture', () => {
  const h100 = fitDevices(gpuFixture('h100-80gb-hbm3'));

  it('Apertus-8B bf16 fits at TP 1 with the full 65536 context, and says how much KV room is left', () => {
    const report = planFit({ model: APERTUS_8B, ...h100 });
    expect(report.verdict.status).toBe('ok');
    expect(report.smallestTensorParallelSize).toBe(1);
    const tp1 = report.options[0];
    expect(tp1).toMatchObject({
      tensorParallelSize: 1,
      available: true,
      fitsRequested: true,
      largestContext: 65536,
    });
    // 0.9 x 81559 MiB = 76.97 GB; minus 16.1 GB weights and 2 GiB overhead leaves room for ~448k tokens.
    expect(tp1?.budgetBytesPerGpu).toBe(Math.floor(0.9 * 81559 * MIB));
    expect(tp1?.kvCapacityTokens).toBe(447956);
    expect(report.verdict.detail).toContain('tensor_parallel_size 1');
    expect(report.verdict.detail).toContain('largest context 65536');
    expect(report.verdict.hint).toBeUndefined();
  });

  it('with LoRA adapters at rank 16, Apertus-8B sets 84 MiB of LoRA buffers aside, taken from the KV cache', () => {
    // Per layer, each slice's input + output: q, k, v 3 x 4096 + 4096 + 2 x 1024; o 4096 + 4096;
    // up (no gate) 4096 + 21504; down 21504 + 4096: 77,824 x 32 layers, plus the embeddings and
    // lm_head 2 x (131,072 + 4096); x rank 16 x 2 bytes.
    expect(vllmLoraBytes(APERTUS_8B, 16)).toBe((77_824 * 32 + 270_336) * 16 * 2);
    expect(vllmLoraBytes(APERTUS_8B, 64)).toBe(4 * vllmLoraBytes(APERTUS_8B, 16));
    expect(vllmLoraBytes(APERTUS_8B, 16, 2)).toBe(2 * vllmLoraBytes(APERTUS_8B, 16));
    const plain = planFit({ model: APERTUS_8B, ...h100 });
    const lora = planFit({ model: APERTUS_8B, ...h100, lora: { rank: 16, maxLoras: 1 } });
    expect(lora.lora).toEqual({ rank: 16, maxLoras: 1, bytesPerGpu: 88_342_528 });
    expect(lora.overheadBytesPerGpu - plain.overheadBytesPerGpu).toBe(88_342_528);
    expect((plain.options[0]?.kvBudgetBytesPerGpu ?? 0) - (lora.options[0]?.kvBudgetBytesPerGpu ?? 0)).toBe(
      88_342_528,
    );
    expect(lora.verdict.detail).toContain('84.3 MiB of LoRA buffers (rank 16, 1 at once)');
  });

  it('Apertus-70B needs TP >= 2: one H100 cannot hold the weights, and the hint says how many would', () => {
    const report = planFit({ model: APERTUS_70B, ...h100 });
    expect(report.verdict.status).toBe('fail');
    expect(report.options[0]).toMatchObject({ tensorParallelSize: 1, largestContext: 0 });
    expect(report.verdict.detail).toMatch(/141 GB weights do not fit at tensor_parallel_size 1/);
    expect(report.verdict.hint).toBe(
      '2 GPUs like these fit max_model_len 25600 (tensor_parallel_size 2); 4 GPUs like these fit max_model_len 65536 (tensor_parallel_size 4)',
    );
  });

  it('Apertus-70B on 4x H100: TP 4 for the full context, TP 2 at up to 25760 tokens', () => {
    const four = fitDevices(gpuFixture('4x-h100-80gb-hbm3'));
    const full = planFit({ model: APERTUS_70B, ...four });
    expect(full.verdict).toMatchObject({ status: 'ok', hint: 'use tensor_parallel_size 4' });
    expect(full.smallestTensorParallelSize).toBe(4);
    expect(full.options.find((o) => o.tensorParallelSize === 2)).toMatchObject({
      available: true,
      largestContext: 25760,
    });
    expect(full.options.find((o) => o.tensorParallelSize === 8)?.available).toBe(false);

    const shorter = planFit({ model: APERTUS_70B, ...four, maxModelLen: 16384 });
    expect(shorter.smallestTensorParallelSize).toBe(2);
    expect(shorter.verdict.hint).toBe('use tensor_parallel_size 2');

    const asked = planFit({ model: APERTUS_70B, ...four, tensorParallelSize: 2 });
    expect(asked.verdict.status).toBe('fail');
    expect(asked.verdict.hint).toMatch(
      /^max_model_len 25600 fits at tensor_parallel_size 2; use tensor_parallel_size 4/,
    );

    expect(planFit({ model: APERTUS_70B, ...four, tensorParallelSize: 3 }).verdict).toMatchObject({
      status: 'fail',
      hint: 'use tensor_parallel_size 4',
    });
  });

  it('on a MIG slice, sizes against the slice, at TP 1 only', () => {
    const mig = fitDevices(gpuFixture('h100-mig-enabled'));
    expect(mig).toEqual({
      devices: [
        { label: 'MIG 3g.40gb device 0 on GPU 0', memoryBytes: 40192 * MIB },
        { label: 'MIG 3g.40gb device 1 on GPU 0', memoryBytes: 40192 * MIB },
      ],
      maxTensorParallel: 1,
    });
    const report = planFit({ model: APERTUS_8B, ...mig });
    expect(report.verdict.status).toBe('ok');
    expect(report.options.filter((o) => o.available).map((o) => o.tensorParallelSize)).toEqual([1]);
    expect(planFit({ model: APERTUS_70B, ...mig }).verdict.status).toBe('fail');
  });
});

describe('fit on the derived 24 GB GPU', () => {
  it('fails Apertus-8B at the full 65536 context and gives a context that fits', () => {
    const report = planFit({ model: APERTUS_8B, ...fitDevices(gpuFixture('l4-24gb')) });
    expect(report.verdict.status).toBe('fail');
    expect(report.verdict.detail).toMatch(/^max_model_len 65536 does not fit at tensor_parallel_size 1/);
    expect(report.options[0]?.largestContext).toBe(26576);
    expect(report.verdict.hint).toMatch(/^max_model_len 25600 fits at tensor_parallel_size 1/);
    expect(report.verdict.hint).toContain('--kv-cache-dtype fp8');
    // The suggested context fits when asked for.
    const suggested = planFit({
      model: APERTUS_8B,
      ...fitDevices(gpuFixture('l4-24gb')),
      maxModelLen: 25600,
    });
    expect(suggested.verdict.status).toBe('ok');
  });

  it('rounds suggestions to whole 1024s, and small ones to 16-token KV blocks', () => {
    expect(suggestedContext(26576)).toBe(25600);
    expect(suggestedContext(1000)).toBe(992);
  });
});

describe('driver and CUDA (runtime-facts 4.1)', () => {
  it('the driver older than a CUDA 13.0 image fails, naming the minimum driver', () => {
    const inventory = gpuFixture('h100-driver-575');
    const driver = inventory.state === 'ok' ? (inventory.driverVersion as string) : '';
    const verdict = judgeDriver(driver, { version: '13.0', source: 'given' });
    expect(verdict.status).toBe('fail');
    expect(verdict.requirement?.minDriver).toBe('580.65.06');
    expect(verdict.detail).toBe(
      "driver 575.57.08 is too old for the image's CUDA 13.0 (given): CUDA 13.0 needs driver >= 580.65.06 (any CUDA 13.x needs >= 580)",
    );
    expect(verdict.hint).toContain('Install NVIDIA driver 580.65.06 or newer');
    expect(verdict.hint).toContain(
      'up to CUDA 12.9 Update 1; vLLM >= 0.20 publishes such images as -cu129 tags',
    );
    // The same driver runs a CUDA 12.9.1 image (vLLM -cu129).
    expect(judgeDriver(driver, { version: '12.9.1', source: 'CUDA_VERSION' }).status).toBe('ok');
  });

  it('the R470 driver fails a CUDA 13.0 image too', () => {
    const verdict = judgeDriver('470.182.03', { version: '13.0.2', source: 'CUDA_VERSION' });
    expect(verdict.status).toBe('fail');
    expect(verdict.detail).toContain('CUDA 13.0 Update 2 needs driver >= 580.95.05');
    expect(verdict.hint).toContain('older than CUDA 11.8');
  });

  it('the H100 capture runs CUDA 13.0 images; an older driver of the branch only warns', () => {
    expect(judgeDriver('580.159.04', { version: '13.0.2', source: 'CUDA_VERSION' }).status).toBe('ok');
    const compat = judgeDriver('570.26', { version: '12.8.1', source: 'CUDA_VERSION' });
    expect(compat.status).toBe('warn');
    expect(compat.hint).toContain('NVIDIA_DISABLE_REQUIRE=1');
    expect(judgeDriver('580.159.04', { version: '14.0', source: 'given' }).status).toBe('warn');
  });

  it('maps CUDA_VERSION patch numbers to the table updates', () => {
    expect(driverRequirement('12.8.1')?.minDriver).toBe('570.124.06');
    expect(driverRequirement('12.8')?.minDriver).toBe('570.26');
    expect(driverRequirement('13.0.3')).toMatchObject({ minDriver: '580.95.05', beyondTable: true });
    expect(driverRequirement('12.7')).toBeUndefined();
    expect(compareVersions('570.124.06', '570.26')).toBeGreaterThan(0);
    expect(newestCudaFor('580.159.04')).toEqual({ cuda: '13.0', update: 2 });
  });

  it('reads the CUDA of an image from its config Env', () => {
    expect(
      imageCudaFromEnv([
        'PATH=/usr/bin',
        'CUDA_VERSION=13.0.2',
        'NVIDIA_REQUIRE_CUDA=cuda>=13.0 brand=tesla,driver>=535',
      ]),
    ).toEqual({
      version: '13.0.2',
      source: 'CUDA_VERSION',
      requireCuda: 'cuda>=13.0 brand=tesla,driver>=535',
    });
    expect(imageCudaFromConfig({ config: { Env: ['NVIDIA_REQUIRE_CUDA=cuda>=12.9'] } })).toEqual({
      version: '12.9',
      source: 'NVIDIA_REQUIRE_CUDA',
      requireCuda: 'cuda>=12.9',
    });
    expect(imageCudaFromConfig({ config: { Env: ['PATH=/bin'] } })).toBeUndefined();
  });
});

describe('compute capability vs dtype (runtime-facts 3.4)', () => {
  it('bf16 needs 8.0, FP8 W8A8 8.9, vLLM at least 7.5', () => {
    expect(judgeCapability('7.5', 'bfloat16').status).toBe('fail');
    expect(judgeCapability('7.5', 'bfloat16').hint).toContain('--dtype half');
    expect(judgeCapability('8.0', 'bfloat16').status).toBe('ok');
    expect(judgeCapability('8.0', 'fp8').status).toBe('warn');
    expect(judgeCapability('8.9', 'fp8').status).toBe('ok');
    expect(judgeCapability('7.0', 'float16').status).toBe('fail');
  });
});

describe('model files', () => {
  it('reads the tiny GGUF model header: shape and weight bytes', async () => {
    const file = generateTinyModel();
    const header = await readGgufHeader(bufferReader(file), 'tiny.gguf');
    const shape = modelShapeFromGguf(header, 'tiny.gguf');
    expect(shape).toMatchObject({
      architecture: TINY_MODEL.architecture,
      hiddenSize: TINY_MODEL.embeddingLength,
      numLayers: TINY_MODEL.blockCount,
      numAttentionHeads: TINY_MODEL.headCount,
      numKvHeads: TINY_MODEL.headCountKv,
      headDim: TINY_MODEL.embeddingLength / TINY_MODEL.headCount,
      vocabSize: TINY_MODEL.vocabSize,
      maxPositionEmbeddings: TINY_MODEL.contextLength,
    });
    expect(header.dataOffset % 32).toBe(0);
    expect(header.dataOffset).toBeLessThan(file.length);
    // The tensor data is the file past the header: with f16/f32 tensors, at least 2 bytes per weight.
    expect(file.length - header.dataOffset).toBeGreaterThan(
      2 * TINY_MODEL.vocabSize * TINY_MODEL.embeddingLength,
    );
    // llama.cpp's f16 KV cache: 2 x 2 layers x 2 KV heads x 16 x 2 bytes.
    const cpu = planCpuFit({
      model: shape,
      weights: { bytes: file.length - header.dataOffset, source: 'GGUF' },
      contextSize: 256,
      memoryAvailableBytes: 8 * GIB,
      memoryTotalBytes: 16 * GIB,
    });
    expect(cpu.kvBytes).toBe(2 * 2 * 2 * 16 * 2 * 256);
    expect(cpu.verdict.status).toBe('ok');
    // With an adapter and embeddings our server holds three contexts, a KV cache each.
    const three = planCpuFit({
      ...cpuInput(shape),
      contextSize: 256,
      contexts: 3,
      memoryAvailableBytes: 8 * GIB,
    });
    expect(three.kvBytes).toBe(3 * cpu.kvBytes);
    expect(three.verdict.detail).toContain('KV for 3 contexts of 256 tokens');
    expect(
      planCpuFit({ ...cpuInput(shape), memoryAvailableBytes: 100, memoryTotalBytes: 200 }).verdict.status,
    ).toBe('fail');
  });

  it('refuses a file that is not GGUF, naming it', async () => {
    await expect(
      readGgufHeader(bufferReader(Buffer.from('PK\u0003\u0004 not a model')), 'model.gguf'),
    ).rejects.toThrow(
      'model.gguf is not a readable GGUF file: it starts with "PK\\u0003\\u0004", not "GGUF".',
    );
    await expect(
      readGgufHeader(bufferReader(generateTinyModel().subarray(0, 100)), 'cut.gguf'),
    ).rejects.toThrow(/cut.gguf .*ends inside its header/);
  });

  it('sums tensor bytes and parameters from a safetensors header', async () => {
    const header = JSON.stringify({
      __metadata__: { format: 'pt' },
      'model.embed_tokens.weight': { dtype: 'BF16', shape: [4, 8], data_offsets: [0, 64] },
      'model.norm.weight': { dtype: 'F32', shape: [8], data_offsets: [64, 96] },
    });
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(header.length));
    const file = Buffer.concat([length, Buffer.from(header), Buffer.alloc(96)]);
    const read = await readSafetensorsHeader(bufferReader(file), 'model.safetensors');
    expect(read).toMatchObject({ headerBytes: 8 + header.length, tensorBytes: 96, parameters: 40 });
    await expect(readSafetensorsHeader(bufferReader(Buffer.alloc(4)), 'x.safetensors')).rejects.toThrow(
      /x.safetensors/,
    );
  });
});

function cpuInput(shape: ReturnType<typeof modelShapeFromGguf>) {
  return { model: shape, weights: { bytes: 1000, source: 'GGUF' }, contextSize: 256 };
}
