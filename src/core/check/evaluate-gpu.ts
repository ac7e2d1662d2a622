/**
 * GPU checks: what GPUs and driver the host has, whether the runtime image's CUDA runs on
 * that driver, whether the GPUs' compute capability serves the model's dtype, MIG, and
 * whether the model fits (src/core/gpu/fit.ts). Pure functions of the probe.
 */
import { capabilityNumber, judgeCapability } from '../gpu/compute-capability.js';
import { compareVersions, type ImageCuda, judgeDriver, newestCudaFor } from '../gpu/cuda-driver.js';
import { DEFAULT_GPU_MEMORY_UTILIZATION, type FitDevice, type FitReport, planFit } from '../gpu/fit.js';
import type { GpuDevice, GpuInventory } from '../gpu/gpu-inventory.js';
import { formatGB, MIB } from '../gpu/units.js';
import type { CheckSubject } from '../operations/check-subject.js';
import type { CheckResult, CheckStatus } from './check-result.js';
import type { ModelWorkload } from './model-workload.js';

/**
 * The oldest image that serves Apertus: vLLM 0.10.2, CUDA 12.8.1 (runtime-facts 1.4, 3.1).
 * Without an image to judge, the driver is judged against it: nothing older will do.
 */
export const OLDEST_APERTUS_IMAGE: ImageCuda = { version: '12.8.1', source: 'given' };

export interface FitSettings {
  maxModelLen?: number;
  gpuMemoryUtilization?: number;
  tensorParallelSize?: number;
  kvCacheDtypeBytes?: number;
}

function gpuNeeded(subject: CheckSubject | undefined): boolean {
  return subject?.workloads.some((w) => w.device === 'gpu') ?? false;
}

function describeGpus(gpus: readonly GpuDevice[]): string {
  const groups = new Map<string, number>();
  for (const gpu of gpus) {
    const key = `${gpu.name}${gpu.memoryTotalBytes ? ` (${Math.round(gpu.memoryTotalBytes / MIB)} MiB)` : ''}`;
    groups.set(key, (groups.get(key) ?? 0) + 1);
  }
  return [...groups].map(([name, count]) => `${count} x ${name}`).join(', ');
}

const NO_GPU_HINT: Record<Exclude<GpuInventory['state'], 'ok'>, string> = {
  'no-nvidia-smi':
    'Install the NVIDIA driver for this kernel from your internal mirror (e.g. nvidia-driver-580 or cuda-drivers >= 580 for CUDA 13 images); check with nvidia-smi.',
  'driver-not-loaded':
    'Load the driver (sudo modprobe nvidia) or rebuild it for the running kernel (dkms autoinstall; common after a kernel update), then check with nvidia-smi.',
  'no-devices':
    'Check that the GPU is visible (lspci | grep -i nvidia) and passed through to this machine, then run nvidia-smi.',
  error: 'Run nvidia-smi on the host to see the error; a reboot clears a hung driver.',
};

export function checkGpu(gpu: GpuInventory, subject: CheckSubject | undefined): CheckResult {
  if (gpu.state === 'ok') {
    return {
      id: 'gpu',
      status: 'ok',
      detail: `${describeGpus(gpu.gpus)}${gpu.notes.length > 0 ? `; ${gpu.notes.join('; ')}` : ''}`,
    };
  }
  let detail = gpu.detail;
  if (gpu.state === 'no-nvidia-smi' && gpu.kernelModuleVersion) {
    detail += '; install the driver utilities (nvidia-utils) matching it';
  }
  const needed = gpuNeeded(subject);
  const status: CheckStatus = needed ? 'fail' : subject ? 'ok' : 'warn';
  return {
    id: 'gpu',
    status,
    detail:
      needed || !subject
        ? detail
        : `${detail}; not needed: the ${subject.kind}'s models run on CPU (llamacpp)`,
    ...(status === 'ok' ? {} : { hint: NO_GPU_HINT[gpu.state] }),
  };
}

export function checkDriver(gpu: GpuInventory, subject: CheckSubject | undefined): CheckResult | undefined {
  if (gpu.state !== 'ok') return undefined;
  const version = gpu.driverVersion;
  if (!version) {
    return {
      id: 'driver',
      status: 'warn',
      detail:
        'the driver version could not be read (not from nvidia-smi, -q -x or /proc/driver/nvidia/version)',
      hint: 'Run nvidia-smi on the host and check the "Driver Version" it prints.',
    };
  }
  const newest = newestCudaFor(version);
  const runs = newest
    ? `runs images up to CUDA ${newest.cuda}${newest.update > 0 ? ` Update ${newest.update}` : ''}`
    : 'runs no CUDA 11.8+ image';
  const required = subject?.requirements?.driver;
  if (required && compareVersions(version, required) < 0) {
    return {
      id: 'driver',
      status: 'fail',
      detail: `driver ${version}; the bundle requires >= ${required}`,
      hint: `Install NVIDIA driver ${required} or newer.`,
    };
  }
  return {
    id: 'driver',
    status: 'ok',
    detail: `driver ${version}${gpu.driverCudaVersion ? ` (reports CUDA ${gpu.driverCudaVersion})` : ''}; ${runs} per the driver table`,
  };
}

export function checkCuda(
  gpu: GpuInventory,
  subject: CheckSubject | undefined,
  image: ImageCuda | undefined,
): CheckResult | undefined {
  if (gpu.state !== 'ok' || !gpu.driverVersion) return undefined;
  if (!image && !gpuNeeded(subject)) return undefined;
  const judged = image ?? OLDEST_APERTUS_IMAGE;
  const verdict = judgeDriver(gpu.driverVersion, judged);
  const assumed = image
    ? ''
    : ' (no image given: judged against the oldest vLLM image that serves Apertus, v0.10.2 on CUDA 12.8.1; pass --image-cuda or --image-config for the bundled one)';
  return {
    id: 'cuda',
    status: verdict.status,
    detail: `${verdict.detail}${assumed}`,
    ...(verdict.hint ? { hint: verdict.hint } : {}),
  };
}

export function checkComputeCapability(gpu: GpuInventory, subject: CheckSubject | undefined): CheckResult[] {
  if (gpu.state !== 'ok') return [];
  const results: CheckResult[] = [];
  const unknown = gpu.gpus.filter((g) => !g.computeCapability);
  const workloads = subject?.workloads.filter((w) => w.device === 'gpu') ?? [];
  const required = subject?.requirements?.computeCapability;
  if (unknown.length > 0) {
    results.push({
      id: 'compute-capability',
      status: workloads.length > 0 || required ? 'warn' : 'ok',
      detail: `compute capability unknown for ${unknown.map((g) => `GPU ${g.index} (${g.name})`).join(', ')}: the driver has no compute_cap field and the name is not in apertus's table`,
      hint: 'Look the GPU up on https://developer.nvidia.com/cuda-gpus; bf16 needs 8.0, FP8 8.9.',
    });
  }
  const known = gpu.gpus.filter((g) => g.computeCapability);
  if (known.length === 0) return results;
  // Judge the weakest GPU: a TP group runs at the pace, and with the features, of its least capable member.
  const weakest = known.reduce((a, b) =>
    capabilityNumber(a.computeCapability as string) <= capabilityNumber(b.computeCapability as string)
      ? a
      : b,
  );
  const cc = weakest.computeCapability as string;
  const source =
    weakest.computeCapabilitySource === 'name table'
      ? ' (from the GPU name: this driver has no compute_cap field)'
      : '';
  if (required && capabilityNumber(cc) < capabilityNumber(required)) {
    results.push({
      id: 'compute-capability',
      status: 'fail',
      detail: `${weakest.name} has compute capability ${cc}${source}; the bundle requires ${required}`,
      hint: 'Use GPUs of that compute capability or newer.',
    });
  }
  for (const workload of workloads) {
    const verdict = judgeCapability(cc, workload.shape.dtype);
    results.push({
      id: 'compute-capability',
      subject: workload.label,
      status: verdict.status,
      detail: `${weakest.name}: ${verdict.detail}${source}`,
      ...(verdict.hint ? { hint: verdict.hint } : {}),
    });
  }
  if (workloads.length === 0 && !required && results.length === 0) {
    results.push({ id: 'compute-capability', status: 'ok', detail: `${weakest.name}: ${cc}${source}` });
  }
  return results;
}

export function checkMig(gpu: GpuInventory): CheckResult | undefined {
  if (gpu.state !== 'ok') return undefined;
  const enabled = gpu.gpus.filter((g) => g.migMode === 'enabled');
  if (enabled.length === 0) {
    return {
      id: 'mig',
      status: 'ok',
      detail: gpu.gpus.some((g) => g.migMode === 'disabled') ? 'MIG is off' : 'no MIG on these GPUs',
    };
  }
  const empty = enabled.filter((g) => g.migDevices.length === 0);
  if (empty.length > 0) {
    return {
      id: 'mig',
      status: 'fail',
      detail: `MIG is on for GPU ${empty.map((g) => g.index).join(', ')} but no MIG devices exist there: nothing can run on ${empty.length === 1 ? 'it' : 'them'}`,
      hint: `Create instances (e.g. sudo nvidia-smi mig -i ${empty[0]?.index} -cgi <profile> -C) or turn MIG off (sudo nvidia-smi -i ${empty[0]?.index} -mig 0, then reset the GPU).`,
    };
  }
  const slices = enabled
    .map(
      (g) =>
        `GPU ${g.index}: ${g.migDevices.map((d) => `${d.profile}${d.memoryBytes ? ` (${formatGB(d.memoryBytes)}${d.memorySource === 'profile name' ? ', from the profile name' : ''})` : ''}`).join(', ')}`,
    )
    .join('; ');
  return {
    id: 'mig',
    status: 'warn',
    detail: `MIG is on (${slices}): vLLM serves one model from one MIG device, without tensor parallelism across slices, so the fit is sized against one slice; memory.total still shows the whole GPU (runtime-facts 4.3)`,
    hint: `To give a model the whole GPU, turn MIG off: sudo nvidia-smi -i ${enabled[0]?.index} -mig 0, then reset the GPU.`,
  };
}

/** vLLM refuses to start when free memory is below utilization x total (runtime-facts 3.3). */
export function checkGpuMemoryFree(
  gpu: GpuInventory,
  subject: CheckSubject | undefined,
  settings: FitSettings,
): CheckResult | undefined {
  if (gpu.state !== 'ok' || (subject && !gpuNeeded(subject))) return undefined;
  const utilization = settings.gpuMemoryUtilization ?? DEFAULT_GPU_MEMORY_UTILIZATION;
  const short = gpu.gpus.filter(
    (g) =>
      g.migMode !== 'enabled' &&
      g.memoryTotalBytes !== undefined &&
      g.memoryFreeBytes !== undefined &&
      g.memoryFreeBytes < utilization * g.memoryTotalBytes,
  );
  if (short.length === 0) return undefined;
  const worst = Math.min(...short.map((g) => (g.memoryFreeBytes as number) / (g.memoryTotalBytes as number)));
  const fits = Math.floor(worst * 100) / 100;
  return {
    id: 'gpu-memory-free',
    status: 'warn',
    detail: `other processes hold GPU memory: ${short
      .map(
        (g) =>
          `GPU ${g.index} has ${formatGB(g.memoryFreeBytes as number)} free of ${formatGB(g.memoryTotalBytes as number)}`,
      )
      .join(', ')}, less than gpu_memory_utilization ${utilization} asks for, so vLLM would refuse to start`,
    hint: `Stop them (nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv lists them), or use gpu_memory_utilization ${fits}.`,
  };
}

/** The devices a model can use: whole GPUs together, or else single MIG slices. */
export function fitDevices(gpu: GpuInventory): { devices: FitDevice[]; maxTensorParallel?: number } {
  if (gpu.state !== 'ok') return { devices: [] };
  const whole = gpu.gpus
    .filter((g) => g.migMode !== 'enabled' && g.memoryTotalBytes !== undefined)
    .map((g) => ({ label: `GPU ${g.index} (${g.name})`, memoryBytes: g.memoryTotalBytes as number }));
  if (whole.length > 0) return { devices: whole };
  const slices = gpu.gpus.flatMap((g) =>
    g.migDevices
      .filter((d) => d.memoryBytes !== undefined)
      .map((d) => ({
        label: `MIG ${d.profile} device ${d.index} on GPU ${g.index}`,
        memoryBytes: d.memoryBytes as number,
      })),
  );
  return { devices: slices, maxTensorParallel: 1 };
}

export function checkFit(
  gpu: GpuInventory,
  subject: CheckSubject | undefined,
  settings: FitSettings,
): { results: CheckResult[]; reports: Array<{ workload: string; report: FitReport }> } {
  const results: CheckResult[] = [];
  const reports: Array<{ workload: string; report: FitReport }> = [];
  const workloads: ModelWorkload[] = subject?.workloads.filter((w) => w.device === 'gpu') ?? [];
  if (workloads.length === 0) return { results, reports };
  const { devices, maxTensorParallel } = fitDevices(gpu);
  for (const workload of workloads) {
    const report = planFit({
      model: workload.shape,
      ...(workload.weights ? { weights: workload.weights } : {}),
      ...(workload.lora ? { lora: workload.lora } : {}),
      devices,
      ...(maxTensorParallel ? { maxTensorParallel } : {}),
      ...settings,
    });
    reports.push({ workload: workload.label, report });
    results.push({ id: 'fit', subject: workload.label, ...report.verdict });
  }
  const minVram = subject?.requirements?.minVramBytes;
  if (minVram !== undefined) {
    const largest = Math.max(0, ...devices.map((d) => d.memoryBytes));
    results.push({
      id: 'requirements',
      status: largest >= minVram ? 'ok' : 'fail',
      detail: `the bundle asks for ${formatGB(minVram)} of GPU memory; the largest device here has ${formatGB(largest)}`,
      ...(largest >= minVram
        ? {}
        : { hint: 'Use a host with larger GPUs, or a bundle built for smaller ones.' }),
    });
  }
  return { results, reports };
}
