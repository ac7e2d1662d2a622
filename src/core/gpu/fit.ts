/**
 * Whether a model fits a host's GPUs under vLLM, per tensor-parallel size, and if not,
 * what would: a larger TP, a shorter context. The rule is runtime-facts 3.5:
 *
 *   util x memory_per_gpu >= weights / TP + overhead + max_model_len x kv_per_token / min(TP, kv_heads)
 *
 * vLLM takes `gpu_memory_utilization` of each GPU's *total* memory (runtime-facts 3.3);
 * weights, activations and CUDA graphs come out of that budget, and the rest is KV cache.
 */
import type { ServedDtype } from './compute-capability.js';
import { estimateParameters, kvBytesPerToken, type ModelShape } from './model-shape.js';
import { formatBinary, formatGB, GIB, MIB } from './units.js';

/**
 * The default of older vLLM releases, and the brief's; current vLLM defaults to 0.92
 * (runtime-facts 3.3). The lower value leaves the report on the safe side.
 */
export const DEFAULT_GPU_MEMORY_UTILIZATION = 0.9;

/**
 * Per GPU, outside weights and KV cache: the CUDA context and cuBLAS/NCCL workspaces
 * (about 0.5 to 1 GiB) plus the activation peak of vLLM's profiling run and its CUDA
 * graphs. runtime-facts 3.5 puts activations and CUDA graphs at "~1-3 GiB
 * [UNCONFIRMED]"; 2 GiB is the middle of that range. Callers may pass their own.
 */
export const DEFAULT_OVERHEAD_BYTES_PER_GPU = 2 * GIB;

/** vLLM allocates KV cache in blocks of 16 tokens (CacheConfig.DEFAULT_BLOCK_SIZE, runtime-facts 3.5). */
export const KV_BLOCK_TOKENS = 16;

/** TP sizes considered beyond the host's GPU count, to say how many GPUs would do. */
const LARGEST_TP_CONSIDERED = 8;

/**
 * llama.cpp outside weights and KV cache: compute buffers and the Node server process.
 * An assumption (not in runtime-facts): llama.cpp's compute buffer is tens to a few
 * hundred MB for models up to 8B at a few thousand tokens of context.
 */
export const LLAMACPP_OVERHEAD_BYTES = 256 * MIB;

export interface FitDevice {
  /** 'GPU 0 (NVIDIA H100 80GB HBM3)' or 'MIG 3g.40gb on GPU 0'. */
  label: string;
  memoryBytes: number;
}

export interface FitInput {
  model: ModelShape;
  /** Weight bytes as served, when known (safetensors, GGUF); else estimated from the shape. */
  weights?: { bytes: number; source: string };
  /** Devices that can work together on one model; MIG slices each stand alone. */
  devices: readonly FitDevice[];
  /** 1 when the devices are MIG slices: vLLM runs one process per slice. */
  maxTensorParallel?: number;
  /** Tokens per sequence; default the model's max_position_embeddings, as vLLM does. */
  maxModelLen?: number;
  gpuMemoryUtilization?: number;
  /** Judge only this TP size (the recipe asks for it); otherwise find the smallest. */
  tensorParallelSize?: number;
  /** 1 for --kv-cache-dtype fp8; default 2 (bf16/fp16 cache, vLLM's auto). */
  kvCacheDtypeBytes?: number;
  overheadBytesPerGpu?: number;
  /** --max-lora-rank and --max-loras when the service serves LoRA adapters: vLLM sets buffers aside for them. */
  lora?: { rank: number; maxLoras: number };
}

export interface FitOption {
  tensorParallelSize: number;
  /** The host has that many devices (and they are not MIG slices). */
  available: boolean;
  /** util x memory of the smallest GPU of the TP group. */
  budgetBytesPerGpu: number;
  weightBytesPerGpu: number;
  kvBudgetBytesPerGpu: number;
  /** KV bytes each GPU holds per token: heads are split across min(TP, kv_heads) GPUs. */
  kvBytesPerTokenPerGpu: number;
  /** Tokens the KV cache holds in total, across all sequences. */
  kvCapacityTokens: number;
  /** The longest max_model_len that fits, capped at the model's maximum; 0 if the weights do not fit. */
  largestContext: number;
  fitsRequested: boolean;
}

export interface FitVerdict {
  status: 'ok' | 'warn' | 'fail';
  detail: string;
  hint?: string;
}

export interface FitReport {
  model: {
    source: string;
    architecture: string;
    dtype: ServedDtype;
    parameters: number;
    weightBytes: number;
    weightSource: string;
    kvBytesPerToken: number;
    maxPositionEmbeddings?: number;
  };
  gpuMemoryUtilization: number;
  /** Outside weights and KV cache, per GPU; includes the LoRA buffers. */
  overheadBytesPerGpu: number;
  /** vLLM's LoRA buffers per GPU (vllmLoraBytes), when the service serves adapters. */
  lora?: { rank: number; maxLoras: number; bytesPerGpu: number };
  requestedMaxModelLen: number;
  requestedTensorParallelSize?: number;
  devices: FitDevice[];
  /** Every TP size the model's heads allow, up to 8 or the device count. */
  options: FitOption[];
  /** The smallest TP the host has that fits the requested context. */
  smallestTensorParallelSize?: number;
  verdict: FitVerdict;
}

/** TP sizes vLLM accepts: heads divisible by TP, and KV heads divisible by TP or replicated (runtime-facts 3.3). */
export function validTensorParallelSizes(model: ModelShape, upTo: number): number[] {
  const sizes: number[] = [];
  for (let tp = 1; tp <= upTo; tp++) {
    const kvOk = model.numKvHeads % tp === 0 || tp % model.numKvHeads === 0;
    if (model.numAttentionHeads % tp === 0 && kvOk) sizes.push(tp);
  }
  return sizes;
}

function roundDown(value: number, step: number): number {
  return Math.max(0, Math.floor(value / step) * step);
}

/**
 * GPU memory vLLM sets aside for LoRA (--enable-lora): every linear layer it wraps (the
 * attention's q, k, v and o, the MLP's up, gate and down) gets, per slice, an A buffer of
 * max_loras x rank x input and a B buffer of max_loras x output x rank (vllm/lora/layers,
 * `lora_a_stacked`, `lora_b_stacked`), and so do the embeddings and lm_head; in the
 * model's 16-bit dtype (LoRAConfig `lora_dtype` auto), with `max_loras` 1, vLLM's default
 * (docs.vllm.ai, config/lora). Held whole on each GPU here, which tensor parallelism only
 * partly shards: an estimate on the safe side. MoE experts' LoRA is not counted.
 */
export function vllmLoraBytes(model: ModelShape, rank: number, maxLoras = 1): number {
  const hidden = model.hiddenSize;
  const attention = model.numAttentionHeads * model.headDim;
  const kv = model.numKvHeads * model.headDim;
  const intermediate = model.intermediateSize ?? 4 * hidden;
  const mlpSlices = model.gatedMlp ? 2 : 1;
  // Per layer, each slice's input plus output width: A is rank x input, B output x rank.
  const perLayer =
    3 * hidden +
    attention +
    2 * kv + // q, k, v: three slices of the hidden input
    attention +
    hidden + // o
    mlpSlices * (hidden + intermediate) + // up (and gate)
    intermediate +
    hidden; // down
  const embeddings = 2 * (model.vocabSize + hidden); // the embedding table and lm_head
  return maxLoras * rank * 2 * (model.numLayers * perLayer + embeddings);
}

/** A max_model_len to suggest: whole thousands (of 1024) when that large, else whole KV blocks. */
export function suggestedContext(tokens: number): number {
  return tokens >= 2048 ? roundDown(tokens, 1024) : roundDown(tokens, KV_BLOCK_TOKENS);
}

function tokensText(tokens: number): string {
  return tokens >= 10_000 ? `${Math.floor(tokens / 1000)}k` : String(tokens);
}

export function planFit(input: FitInput): FitReport {
  const { model } = input;
  const utilization = input.gpuMemoryUtilization ?? DEFAULT_GPU_MEMORY_UTILIZATION;
  const loraBytes = input.lora ? vllmLoraBytes(model, input.lora.rank, input.lora.maxLoras) : 0;
  const overhead = (input.overheadBytesPerGpu ?? DEFAULT_OVERHEAD_BYTES_PER_GPU) + loraBytes;
  const parameters = estimateParameters(model);
  const weightBytes = input.weights?.bytes ?? Math.round(parameters * model.bytesPerParameter);
  const weightSource =
    input.weights?.source ??
    `estimated: ${(parameters / 1e9).toFixed(2)} B parameters x ${model.bytesPerParameter} bytes`;
  const kvPerToken = kvBytesPerToken(model, input.kvCacheDtypeBytes ?? 2);
  const maxPositions = model.maxPositionEmbeddings;
  const requested = input.maxModelLen ?? maxPositions ?? 4096;
  const devices = [...input.devices].sort((a, b) => b.memoryBytes - a.memoryBytes);
  const hostTp = Math.min(devices.length, input.maxTensorParallel ?? devices.length);
  const largestDevice = devices[0]?.memoryBytes ?? 0;

  const options = validTensorParallelSizes(model, Math.max(LARGEST_TP_CONSIDERED, hostTp)).map(
    (tp): FitOption => {
      const available = tp <= hostTp;
      // A TP group is as strong as its smallest GPU; beyond the host's count, assume more of its largest.
      const memory = available ? (devices[tp - 1]?.memoryBytes ?? 0) : largestDevice;
      const budget = utilization * memory;
      const weightsPerGpu = weightBytes / tp;
      const kvBudget = Math.max(0, budget - weightsPerGpu - overhead);
      const kvPerTokenPerGpu = kvPerToken / Math.min(tp, model.numKvHeads);
      const capacity = Math.floor(kvBudget / kvPerTokenPerGpu);
      const largest = roundDown(Math.min(capacity, maxPositions ?? capacity), KV_BLOCK_TOKENS);
      return {
        tensorParallelSize: tp,
        available,
        budgetBytesPerGpu: Math.floor(budget),
        weightBytesPerGpu: Math.ceil(weightsPerGpu),
        kvBudgetBytesPerGpu: Math.floor(kvBudget),
        kvBytesPerTokenPerGpu: kvPerTokenPerGpu,
        kvCapacityTokens: capacity,
        largestContext: largest,
        fitsRequested: capacity >= requested,
      };
    },
  );

  const report: FitReport = {
    model: {
      source: model.source,
      architecture: model.architecture,
      dtype: model.dtype,
      parameters,
      weightBytes,
      weightSource,
      kvBytesPerToken: kvPerToken,
      ...(maxPositions ? { maxPositionEmbeddings: maxPositions } : {}),
    },
    gpuMemoryUtilization: utilization,
    overheadBytesPerGpu: overhead,
    ...(input.lora ? { lora: { ...input.lora, bytesPerGpu: loraBytes } } : {}),
    requestedMaxModelLen: requested,
    ...(input.tensorParallelSize ? { requestedTensorParallelSize: input.tensorParallelSize } : {}),
    devices,
    options,
    verdict: { status: 'fail', detail: '' },
  };
  const smallest = options.find((o) => o.available && o.fitsRequested);
  if (smallest) report.smallestTensorParallelSize = smallest.tensorParallelSize;
  report.verdict = judgeFit(report, hostTp, input.tensorParallelSize);
  return report;
}

function judgeFit(report: FitReport, hostTp: number, requestedTp: number | undefined): FitVerdict {
  const { options, model } = report;
  const len = report.requestedMaxModelLen;
  const weights = `${formatGB(model.weightBytes)} weights`;
  const describe = (o: FitOption) =>
    `${weights} (${formatGB(o.weightBytesPerGpu)} per GPU at TP ${o.tensorParallelSize}), KV ${formatBinary(model.kvBytesPerToken)}/token, ` +
    `${report.lora ? `${formatBinary(report.lora.bytesPerGpu)} of LoRA buffers (rank ${report.lora.rank}, ${report.lora.maxLoras} at once), ` : ''}` +
    `room for ${tokensText(o.kvCapacityTokens)} tokens of KV cache in ${formatGB(o.budgetBytesPerGpu)} usable per GPU ` +
    `(${deviceText(o)}); largest context ${o.largestContext}`;
  const deviceText = (o: FitOption) => {
    const used = report.devices.slice(0, o.tensorParallelSize);
    const smallest = used.at(-1);
    if (!o.available || !smallest)
      return `${o.tensorParallelSize} GPUs like ${report.devices[0]?.label ?? 'none'}`;
    return used.length === 1 ? smallest.label : `${used.length} GPUs, the smallest ${smallest.label}`;
  };
  const wider = options.find((o) => !o.available && o.fitsRequested);
  const moreGpus = wider
    ? `${wider.tensorParallelSize} GPUs like these fit max_model_len ${len} (tensor_parallel_size ${wider.tensorParallelSize})`
    : undefined;
  // The first TP beyond the host that holds the weights at all, when even that is short of the full context.
  const partly = options.find((o) => !o.available && !o.fitsRequested && o.largestContext >= KV_BLOCK_TOKENS);
  const someGpus =
    partly && (!wider || partly.tensorParallelSize < wider.tensorParallelSize)
      ? `${partly.tensorParallelSize} GPUs like these fit max_model_len ${suggestedContext(partly.largestContext)} (tensor_parallel_size ${partly.tensorParallelSize})`
      : undefined;
  const kvFp8 = 'or --kv-cache-dtype fp8 (halves the KV cache)';

  if (requestedTp !== undefined) {
    const chosen = options.find((o) => o.tensorParallelSize === requestedTp);
    if (!chosen) {
      const valid = options.filter((o) => o.available).map((o) => o.tensorParallelSize);
      const pick = report.smallestTensorParallelSize ?? valid.at(-1);
      return {
        status: 'fail',
        detail: `tensor_parallel_size ${requestedTp} is not valid for this model: its attention heads and KV heads must divide by it, or it by the KV heads (valid on this host: ${valid.join(', ') || 'none'})`,
        hint: pick ? `use tensor_parallel_size ${pick}` : 'Use a host with more GPUs.',
      };
    }
    if (!chosen.available) {
      return {
        status: 'fail',
        detail: `tensor_parallel_size ${requestedTp} needs ${requestedTp} GPUs; this host offers ${hostTp}`,
        hint: report.smallestTensorParallelSize
          ? `use tensor_parallel_size ${report.smallestTensorParallelSize}`
          : 'Use a host with more GPUs, or a shorter max_model_len.',
      };
    }
    if (chosen.fitsRequested)
      return { status: 'ok', detail: `fits at max_model_len ${len}: ${describe(chosen)}` };
    return failWithContext(chosen, report.smallestTensorParallelSize);
  }

  const smallest = options.find((o) => o.tensorParallelSize === report.smallestTensorParallelSize);
  if (smallest) {
    return {
      status: 'ok',
      detail: `fits at max_model_len ${len} with tensor_parallel_size ${smallest.tensorParallelSize}: ${describe(smallest)}`,
      ...(smallest.tensorParallelSize > 1
        ? { hint: `use tensor_parallel_size ${smallest.tensorParallelSize}` }
        : {}),
    };
  }
  const best = options
    .filter((o) => o.available)
    .sort((a, b) => b.largestContext - a.largestContext || a.tensorParallelSize - b.tensorParallelSize)[0];
  if (!best) {
    return {
      status: 'fail',
      detail: `no GPU to run the model on: it needs ${weights} plus ${formatBinary(model.kvBytesPerToken)} of KV cache per token (${formatGB(len * model.kvBytesPerToken)} at max_model_len ${len})`,
      hint: 'Use a host with NVIDIA GPUs whose memory, times gpu_memory_utilization, holds that (split across GPUs with tensor parallelism).',
    };
  }
  return failWithContext(best, undefined);

  function failWithContext(option: FitOption, otherTp: number | undefined): FitVerdict {
    const at = `tensor_parallel_size ${option.tensorParallelSize}`;
    if (option.largestContext < KV_BLOCK_TOKENS) {
      const short = option.kvBudgetBytesPerGpu <= 0;
      return {
        status: 'fail',
        detail: short
          ? `${weights} do not fit at ${at}: ${formatGB(option.weightBytesPerGpu)} per GPU plus ${formatGB(report.overheadBytesPerGpu)} runtime overhead exceed the ${formatGB(option.budgetBytesPerGpu)} usable (gpu_memory_utilization ${report.gpuMemoryUtilization})`
          : `no room for KV cache at ${at}: ${describe(option)}`,
        hint:
          [otherTp ? `use tensor_parallel_size ${otherTp}` : undefined, someGpus, moreGpus]
            .filter(Boolean)
            .join('; ') ||
          'Use a quantized variant (fp8 halves the weights, int4 quarters them) or a host with larger GPUs.',
      };
    }
    const fits = suggestedContext(option.largestContext);
    const alternatives = [
      otherTp ? `use tensor_parallel_size ${otherTp} for the full ${len}` : undefined,
      moreGpus ? `${moreGpus}` : undefined,
      kvFp8,
    ].filter(Boolean);
    return {
      status: 'fail',
      detail: `max_model_len ${len} does not fit at ${at}: needs ${formatGB(len * option.kvBytesPerTokenPerGpu)} of KV cache per GPU, ${formatGB(option.kvBudgetBytesPerGpu)} left after ${weights} and ${formatGB(report.overheadBytesPerGpu)} overhead`,
      hint: `max_model_len ${fits} fits at ${at}; ${alternatives.join('; ')}`,
    };
  }
}

export interface CpuFitInput {
  model: ModelShape;
  weights: { bytes: number; source: string };
  contextSize: number;
  /** Contexts of contextSize tokens, each with its own KV cache; absent: one. */
  contexts?: number;
  memoryAvailableBytes?: number;
  memoryTotalBytes?: number;
}

export interface CpuFitReport {
  weightBytes: number;
  kvBytes: number;
  overheadBytes: number;
  neededBytes: number;
  memoryAvailableBytes?: number;
  verdict: FitVerdict;
}

/** llama.cpp on CPU: weights (mmapped) + f16 KV cache for contextSize + overhead, against RAM. */
export function planCpuFit(input: CpuFitInput): CpuFitReport {
  const contexts = input.contexts ?? 1;
  const kvBytes = kvBytesPerToken(input.model, 2) * input.contextSize * contexts;
  const needed = input.weights.bytes + kvBytes + LLAMACPP_OVERHEAD_BYTES;
  const report: CpuFitReport = {
    weightBytes: input.weights.bytes,
    kvBytes,
    overheadBytes: LLAMACPP_OVERHEAD_BYTES,
    neededBytes: needed,
    verdict: { status: 'ok', detail: '' },
  };
  const what = `${formatGB(input.weights.bytes)} weights + ${formatBinary(kvBytes)} KV for ${contexts === 1 ? '' : `${contexts} contexts of `}${input.contextSize} tokens + ${formatBinary(LLAMACPP_OVERHEAD_BYTES)} overhead = ${formatGB(needed)}`;
  if (input.memoryAvailableBytes === undefined) {
    report.verdict = { status: 'warn', detail: `needs ${what}; the host's free memory is unknown` };
    return report;
  }
  report.memoryAvailableBytes = input.memoryAvailableBytes;
  const available = formatGB(input.memoryAvailableBytes);
  if (needed <= input.memoryAvailableBytes) {
    report.verdict = { status: 'ok', detail: `${what}, ${available} of memory available` };
  } else if (input.memoryTotalBytes !== undefined && needed <= input.memoryTotalBytes) {
    report.verdict = {
      status: 'warn',
      detail: `${what}, more than the ${available} available now (of ${formatGB(input.memoryTotalBytes)})`,
      hint: 'Free memory on the host, or lower contextSize; weights are memory-mapped, so this runs but may page.',
    };
  } else {
    report.verdict = {
      status: 'fail',
      detail: `${what}, more than the host's ${formatGB(input.memoryTotalBytes ?? input.memoryAvailableBytes)} of memory`,
      hint: 'Use a smaller or more strongly quantized GGUF, a lower contextSize, or a host with more memory.',
    };
  }
  return report;
}
