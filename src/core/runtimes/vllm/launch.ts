/**
 * How install launches a vLLM service on one host (DESIGN.md section 4): the flags the
 * recipe leaves out come from the fit plan of the host's GPUs (the same calculation
 * `apertus check` reports), and where the service has several images (one per CUDA
 * version) the host's NVIDIA driver picks one. Recipe values always win. Pure: the caller
 * brings the probed GPUs, the model's shape and the images' configs.
 */

import { fitDevices } from '../../check/evaluate-gpu.js';
import { isApertusError } from '../../errors.js';
import { DEFAULT_GPU_MEMORY_UTILIZATION, planFit } from '../../gpu/fit.js';
import type { GpuInventory } from '../../gpu/gpu-inventory.js';
import type { ModelWorkload } from '../../operations/check-subject.js';
import type { ServiceImage } from '../container/service-image.js';
import type { VllmChoice, VllmServiceSpec } from './spec.js';
import { selectBundledVllmImage, type VllmFitFlags, vllmFlagsFromFit } from './vllm.js';

export interface VllmLaunchInput {
  /** The host's GPUs as the install's host check probed them; undefined when not probed. */
  gpu: GpuInventory | undefined;
  /** The served model's shape and weight bytes (the check subject's vLLM workload). */
  workload?: Pick<ModelWorkload, 'shape' | 'weights' | 'lora'> | undefined;
  /** Image configs by image component name: their Env carries CUDA_VERSION. */
  imageConfigs: ReadonlyMap<string, unknown>;
}

/** The service with its image and launch flags chosen for this host, and `chosen` saying how. */
export function planVllmLaunch(service: VllmServiceSpec, input: VllmLaunchInput): VllmServiceSpec {
  const { gpu } = input;
  const driver = gpu?.state === 'ok' ? gpu.driverVersion : undefined;
  const notes: string[] = [];

  let image: ServiceImage = service.image;
  let imageSource: VllmChoice['image'] = 'recipe';
  const candidates = [service.image, ...(service.alternativeImages ?? [])];
  if (candidates.length > 1) {
    if (driver === undefined) {
      notes.push(`no NVIDIA driver found: ran the first of ${candidates.length} images`);
    } else {
      const selected = selectBundledVllmImage(
        candidates.map((c) => ({ image: c.reference, config: input.imageConfigs.get(c.component) })),
        driver,
      );
      image = candidates.find((c) => c.reference === selected.image) ?? service.image;
      imageSource = 'driver';
      notes.push(`image for CUDA ${selected.cuda.version} by driver ${driver}`);
    }
  }

  let fit: VllmFitFlags | undefined;
  const devices = gpu ? fitDevices(gpu) : { devices: [] };
  if (input.workload === undefined) {
    notes.push('no model shape to plan the fit with');
  } else if (devices.devices.length === 0) {
    notes.push('no GPU found to plan the fit with');
  } else {
    const report = planFit({
      model: input.workload.shape,
      ...(input.workload.weights ? { weights: input.workload.weights } : {}),
      ...(input.workload.lora ? { lora: input.workload.lora } : {}),
      devices: devices.devices,
      ...(devices.maxTensorParallel ? { maxTensorParallel: devices.maxTensorParallel } : {}),
      ...(service.maxModelLen === undefined ? {} : { maxModelLen: service.maxModelLen }),
      ...(service.tensorParallelSize === undefined ? {} : { tensorParallelSize: service.tensorParallelSize }),
      ...(service.gpuMemoryUtilization === undefined
        ? {}
        : { gpuMemoryUtilization: service.gpuMemoryUtilization }),
    });
    try {
      fit = vllmFlagsFromFit(report);
      notes.push(
        `fit on ${devices.devices.map((d) => d.label).join(', ')}${driver ? `, driver ${driver}` : ''}`,
      );
    } catch (error) {
      // The host check failed this fit and the operator skipped it (--skip-check fit).
      if (!isApertusError(error)) throw error;
      notes.push(`no fit (${error.message}): recipe values and vLLM's defaults`);
    }
  }

  const pick = <T>(recipe: T | undefined, planned: T | undefined) =>
    recipe !== undefined
      ? { value: recipe, source: 'recipe' as const }
      : planned !== undefined
        ? { value: planned, source: 'fit' as const }
        : { value: undefined, source: 'default' as const };
  const tp = pick(service.tensorParallelSize, fit?.tensorParallelSize);
  const context = pick(service.maxModelLen, fit?.maxModelLen);
  const utilization = pick(service.gpuMemoryUtilization, fit?.gpuMemoryUtilization);
  const { alternativeImages: _alternatives, chosen: _previous, ...rest } = service;
  return {
    ...rest,
    image,
    ...(service.alternativeImages ? { alternativeImages: service.alternativeImages } : {}),
    ...(tp.value === undefined ? {} : { tensorParallelSize: tp.value }),
    ...(context.value === undefined ? {} : { maxModelLen: context.value }),
    ...(utilization.value === undefined ? {} : { gpuMemoryUtilization: utilization.value }),
    chosen: {
      tensorParallelSize: tp.source,
      maxModelLen: context.source,
      gpuMemoryUtilization: utilization.source,
      image: imageSource,
      detail: notes.join('; '),
    },
  };
}

/** What the install report records of a vLLM service's launch. */
export interface VllmLaunchRecord {
  tensorParallelSize: number;
  /** Absent: vLLM takes the model's own maximum. */
  maxModelLen?: number;
  gpuMemoryUtilization: number;
  chosen?: VllmChoice;
}

/** The flags the service runs with, defaults filled in as containerRunSpec fills them. */
export function vllmLaunchRecord(service: VllmServiceSpec): VllmLaunchRecord {
  return {
    tensorParallelSize: service.tensorParallelSize ?? 1,
    ...(service.maxModelLen === undefined ? {} : { maxModelLen: service.maxModelLen }),
    gpuMemoryUtilization: service.gpuMemoryUtilization ?? DEFAULT_GPU_MEMORY_UTILIZATION,
    ...(service.chosen ? { chosen: service.chosen } : {}),
  };
}
