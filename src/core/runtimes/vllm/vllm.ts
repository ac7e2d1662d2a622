/**
 * The vLLM container: a vLLM service and its fit plan as a container run spec
 * (src/core/runtimes/container/engine.ts). Facts from runtime-facts 3:
 * - the image is chosen by the host driver among the bundle's images: the image's CUDA
 *   needs a minimum driver (4.1);
 * - the entrypoint is explicit (`vllm` + `serve`): it changed between releases (3.1, 3.3);
 * - the model is served by path, positional, with HF_HUB_OFFLINE=1 (3.3);
 * - the flags come from the fit plan: --tensor-parallel-size, --max-model-len,
 *   --gpu-memory-utilization (3.3, 3.5), and --ipc host with tensor parallelism;
 * - an embeddings instance is `--runner pooling` from v0.10.1, `--task embed` before (3.6);
 * - LoRA adapters are served with `--enable-lora`, `--lora-modules NAME=PATH` (a path, which vLLM
 *   reads from disk; anything else it takes for a Hub repo id) and `--max-lora-rank`, whose
 *   value is one of a fixed set (docs.vllm.ai features/lora.md, "Serving LoRA Adapters").
 */
import path from 'node:path/posix';
import { ApertusError } from '../../errors.js';
import { compareVersions, type ImageCuda, imageCudaFromConfig, judgeDriver } from '../../gpu/cuda-driver.js';
import { DEFAULT_GPU_MEMORY_UTILIZATION, type FitReport } from '../../gpu/fit.js';
import type { ContainerRunSpec, PortBinding, RestartPolicy } from '../container/engine.js';
import { containerDataDir } from '../container/service.js';
import type { VllmServiceSpec } from './spec.js';

/** The port vLLM listens on inside its container (its default). */
export const VLLM_CONTAINER_PORT = 8000;

/** Where the model directory is mounted, read-only, inside the container. */
export const VLLM_MODELS_DIR = '/models';

/** The writable cache vLLM, torch.compile and Triton use (runtime-facts 3.3: the model mount is read-only). */
export const VLLM_CACHE_DIR = '/var/cache/vllm';

/**
 * The values `--max-lora-rank` accepts: vLLM's `MaxLoRARanks` (vllm/config/lora.py,
 * https://docs.vllm.ai/en/v0.14.0/api/vllm/config/lora/); any other number is refused at start.
 */
export const VLLM_LORA_RANKS = [1, 8, 16, 32, 64, 128, 256, 320, 512] as const;

/** The smallest rank vLLM accepts that holds every adapter's rank. */
export function vllmMaxLoraRank(service: string, ranks: readonly number[]): number {
  const highest = Math.max(...ranks);
  const allowed = VLLM_LORA_RANKS.find((rank) => rank >= highest);
  if (allowed === undefined || ranks.some((rank) => !Number.isInteger(rank) || rank < 1)) {
    throw new ApertusError(
      'service-invalid',
      `service ${service}: vLLM serves LoRA adapters of rank 1 to ${VLLM_LORA_RANKS.at(-1)}, and an adapter has rank ${highest}`,
      {
        hint: 'Serve that adapter merged into its base model, or train it with a lower rank (r in adapter_config.json).',
      },
    );
  }
  return allowed;
}

/** A vLLM image in the bundle, with its config (for CUDA_VERSION). */
export interface BundledVllmImage {
  /** Reference as loaded on the host. */
  image: string;
  config: unknown;
}

/**
 * Of the vLLM images a bundle carries (say a CUDA 13 and a -cu129 variant), the one whose
 * CUDA (read from the image config, runtime-facts 3.1) the host driver runs; newest first.
 */
export function selectBundledVllmImage(
  images: readonly BundledVllmImage[],
  driverVersion: string,
): { image: string; cuda: ImageCuda } {
  const known = images
    .map((entry) => ({ entry, cuda: imageCudaFromConfig(entry.config) }))
    .filter((c): c is { entry: BundledVllmImage; cuda: ImageCuda } => c.cuda !== undefined)
    .sort((a, b) => compareVersions(b.cuda.version, a.cuda.version));
  for (const { entry, cuda } of known) {
    if (judgeDriver(driverVersion, cuda).status === 'ok') return { image: entry.image, cuda };
  }
  const oldest = known[known.length - 1];
  const listed = known.map((k) => `${k.entry.image} (CUDA ${k.cuda.version})`).join(', ');
  throw new ApertusError(
    'vllm-driver-too-old',
    `NVIDIA driver ${driverVersion} runs none of the bundle's vLLM images${listed ? `: ${listed}` : ' (none says its CUDA version)'}`,
    {
      kind: 'operation',
      hint:
        oldest === undefined
          ? 'Bundle a vllm/vllm-openai image; its config carries CUDA_VERSION.'
          : judgeDriver(driverVersion, oldest.cuda).hint,
    },
  );
}

/** The serving flags the fit plan decides. */
export interface VllmFitFlags {
  tensorParallelSize: number;
  /** Absent: vLLM derives it from the model config (65,536 for Apertus). */
  maxModelLen?: number;
  gpuMemoryUtilization: number;
}

/**
 * The flags from a fit report: the smallest TP that fits the requested context, else the
 * largest context any available TP holds. Throws with the report's hint when nothing fits.
 */
export function vllmFlagsFromFit(report: FitReport): VllmFitFlags {
  const available = report.options.filter((o) => o.available && o.largestContext > 0);
  const tp = report.requestedTensorParallelSize ?? report.smallestTensorParallelSize;
  const chosen =
    tp !== undefined
      ? available.find((o) => o.tensorParallelSize === tp)
      : [...available].sort((a, b) => b.largestContext - a.largestContext)[0];
  if (chosen === undefined) {
    throw new ApertusError(
      'vllm-does-not-fit',
      `the model does not fit the host's GPUs: ${report.verdict.detail}`,
      {
        kind: 'operation',
        hint: report.verdict.hint ?? 'Use a host with more GPU memory, or a quantized variant of the model.',
      },
    );
  }
  return {
    tensorParallelSize: chosen.tensorParallelSize,
    maxModelLen: chosen.fitsRequested ? report.requestedMaxModelLen : chosen.largestContext,
    gpuMemoryUtilization: report.gpuMemoryUtilization,
  };
}

export interface VllmServiceInput {
  service: string;
  /** The image reference as loaded on the host. */
  image: string;
  /** The model directory on the host (config.json, tokenizer, safetensors). */
  modelDir: string;
  /** The name clients use (`--served-model-name`). */
  servedModelName: string;
  /** Port on the host. */
  port: number;
  bind?: '127.0.0.1' | '0.0.0.0';
  /** A writable directory on the host for vLLM's compile and kernel caches. */
  cacheDir: string;
  fit: VllmFitFlags;
  /** 'auto' keeps bf16; 'half' for GPUs below compute capability 8.0 (runtime-facts 3.4). */
  dtype?: 'auto' | 'half' | 'bfloat16' | 'float16';
  /** Serve /v1/embeddings with a pooling model instead of generation. */
  embeddings?: boolean;
  gpus?: 'all' | readonly number[];
  restart?: RestartPolicy;
  /** Run the model's own Python code (config.json auto_map): `--trust-remote-code`. */
  trustRemoteCode?: boolean;
  /** LoRA adapters: each directory on the host (adapter_config.json and weights), its id and rank. */
  adapters?: ReadonlyArray<{ id: string; dir: string; rank: number }>;
  /** More vLLM flags from the recipe, after ours. */
  extraArgs?: readonly string[];
  engineArgs?: readonly string[];
}

/** `v0.10.0` -> '0.10.0'; undefined for `latest`, digests and other tags. */
function tagVersion(image: string): string | undefined {
  const tag = /:(v?\d+\.\d+(?:\.\d+)?)(?:[-+][\w.-]*)?$/.exec(image.split('@')[0] ?? '')?.[1];
  return tag?.replace(/^v/, '');
}

/** The flag that makes an instance serve embeddings, by the image's vLLM version (runtime-facts 3.6). */
export function embeddingFlags(image: string): string[] {
  const version = tagVersion(image);
  if (version !== undefined && compareVersions(version, '0.10.0') <= 0) return ['--task', 'embed'];
  return ['--runner', 'pooling'];
}

function requireRange(
  service: string,
  field: string,
  value: number,
  min: number,
  max: number,
  integer = true,
) {
  if ((integer && !Number.isInteger(value)) || !(value >= min && value <= max)) {
    throw new ApertusError(
      'service-invalid',
      `service ${service}: ${field} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${value}`,
      { hint: `Fix ${field} of service "${service}" in the recipe, or let the fit plan choose it.` },
    );
  }
}

/**
 * The environment that keeps a vLLM container off the network and its caches warm
 * (offline-pitfalls.md): no Hub lookups even with local weights (vllm-project/vllm#1910,
 * #3719, #23684), no usage statistics (#1376); tiktoken reads its vocabularies from the
 * model directory (#22525, openai/harmony#101); and every JIT cache (vLLM's torch.compile
 * cache under VLLM_CACHE_ROOT, Inductor, Triton, the Hugging Face modules cache of remote
 * code under XDG_CACHE_HOME) in the persistent writable mount, so a restart is warm
 * (vllm-project/vllm PR 48190; gpustack/gpustack#5175: cold 170.6 s, warm 76.9 s).
 */
export function vllmOfflineEnv(modelMount: string): Record<string, string> {
  return {
    HF_HUB_OFFLINE: '1',
    TRANSFORMERS_OFFLINE: '1',
    VLLM_NO_USAGE_STATS: '1',
    DO_NOT_TRACK: '1',
    VLLM_CACHE_ROOT: VLLM_CACHE_DIR,
    XDG_CACHE_HOME: VLLM_CACHE_DIR,
    TRITON_CACHE_DIR: path.join(VLLM_CACHE_DIR, 'triton'),
    TORCHINDUCTOR_CACHE_DIR: path.join(VLLM_CACHE_DIR, 'torchinductor'),
    TIKTOKEN_ENCODINGS_BASE: modelMount,
    TIKTOKEN_RS_CACHE_DIR: path.join(VLLM_CACHE_DIR, 'tiktoken'),
  };
}

/** The container service that runs one vLLM instance. */
export function renderVllmContainer(input: VllmServiceInput): ContainerRunSpec {
  const { service, fit } = input;
  requireRange(service, 'tensorParallelSize', fit.tensorParallelSize, 1, 64);
  if (fit.maxModelLen !== undefined)
    requireRange(service, 'maxModelLen', fit.maxModelLen, 1, 16 * 1024 * 1024);
  requireRange(service, 'gpuMemoryUtilization', fit.gpuMemoryUtilization, 0.05, 1, false);
  if (input.servedModelName.trim() === '' || input.servedModelName.startsWith('-')) {
    throw new ApertusError(
      'service-invalid',
      `service ${service}: the served model name "${input.servedModelName}" is not usable`,
    );
  }
  const modelMount = path.join(VLLM_MODELS_DIR, path.basename(input.modelDir));
  // Each adapter directory is mounted read-only beside the model; vLLM reads it by that absolute path.
  const adapters = (input.adapters ?? []).map((adapter) => ({
    ...adapter,
    mount: path.join(VLLM_MODELS_DIR, path.basename(adapter.dir)),
  }));
  const loraArgs =
    adapters.length === 0
      ? []
      : [
          '--enable-lora',
          '--max-lora-rank',
          String(
            vllmMaxLoraRank(
              service,
              adapters.map((a) => a.rank),
            ),
          ),
          '--lora-modules',
          ...adapters.map((adapter) => `${adapter.id}=${adapter.mount}`),
        ];
  const args = [
    'serve',
    modelMount,
    '--served-model-name',
    input.servedModelName,
    '--host',
    '0.0.0.0',
    '--port',
    String(VLLM_CONTAINER_PORT),
    '--tensor-parallel-size',
    String(fit.tensorParallelSize),
    ...(fit.maxModelLen === undefined ? [] : ['--max-model-len', String(fit.maxModelLen)]),
    '--gpu-memory-utilization',
    String(fit.gpuMemoryUtilization),
    '--dtype',
    input.dtype ?? 'auto',
    ...(input.embeddings ? embeddingFlags(input.image) : []),
    ...(input.trustRemoteCode ? ['--trust-remote-code'] : []),
    ...loraArgs,
    ...(input.extraArgs ?? []),
  ];
  const ports: PortBinding[] = [
    { hostPort: input.port, containerPort: VLLM_CONTAINER_PORT, bind: input.bind ?? '127.0.0.1' },
  ];
  return {
    service,
    image: input.image,
    entrypoint: ['vllm'],
    args,
    env: vllmOfflineEnv(modelMount),
    ports,
    volumes: [
      { source: input.modelDir, target: modelMount, readOnly: true },
      ...adapters.map((adapter) => ({ source: adapter.dir, target: adapter.mount, readOnly: true })),
      { source: input.cacheDir, target: VLLM_CACHE_DIR, readOnly: false },
    ],
    gpus: input.gpus ?? 'all',
    restart: input.restart ?? 'on-failure',
    // NCCL between tensor-parallel workers uses shared memory (runtime-facts 3.3).
    ipcHost: fit.tensorParallelSize > 1,
    ...(input.engineArgs ? { engineArgs: input.engineArgs } : {}),
  };
}

/** The container a bundle's vLLM service runs as from a release; defaults as the fit plan's. */
export function vllmRunSpec(
  service: VllmServiceSpec,
  releaseDir: string,
  root: string,
  engineArgs?: readonly string[],
): ContainerRunSpec {
  return renderVllmContainer({
    service: service.name,
    image: service.image.reference,
    modelDir: path.join(releaseDir, service.model.component),
    servedModelName: service.model.id,
    port: service.port,
    bind: service.bind,
    cacheDir: path.join(containerDataDir(root, service.name), 'cache'),
    fit: {
      tensorParallelSize: service.tensorParallelSize ?? 1,
      ...(service.maxModelLen === undefined ? {} : { maxModelLen: service.maxModelLen }),
      gpuMemoryUtilization: service.gpuMemoryUtilization ?? DEFAULT_GPU_MEMORY_UTILIZATION,
    },
    dtype: service.dtype,
    embeddings: service.embeddings,
    ...(service.trustRemoteCode ? { trustRemoteCode: true } : {}),
    ...(service.adapters?.length
      ? {
          adapters: service.adapters.map((adapter) => ({
            id: adapter.id,
            dir: path.join(releaseDir, adapter.component),
            rank: adapterRank(service.name, adapter),
          })),
        }
      : {}),
    extraArgs: service.extraArgs,
    ...(engineArgs ? { engineArgs } : {}),
  });
}

/** An adapter's rank, which every bundle with vLLM adapters records (its schema requires it). */
function adapterRank(service: string, adapter: { component: string; rank?: number }): number {
  if (adapter.rank === undefined) {
    throw new ApertusError(
      'service-invalid',
      `service ${service}: the bundle records no rank for adapter ${adapter.component}`,
      { hint: 'Bundle the recipe again with this apertus: it reads the rank from adapter_config.json.' },
    );
  }
  return adapter.rank;
}
