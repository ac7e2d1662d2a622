/**
 * The services of a bundle as one host will run them: each kind that chooses something
 * per host (vLLM: its image by the driver, its flags by the fit plan of the GPUs the
 * install's host check probed) does it here, before staging, so the release records what
 * ran and a rollback restarts it the same way.
 */
import type { GpuInventory } from '../gpu/gpu-inventory.js';
import type { BundleReader } from '../layout/bundle-reader.js';
import { blobPath } from '../layout/names.js';
import type { ComponentLayers } from '../layout/types.js';
import { loadCheckSubject } from '../operations/check-subject.js';
import { adapterOf, type ServiceSpec } from './registry.js';

export async function planLaunches(
  services: ServiceSpec[],
  input: {
    bundlePath: string;
    reader: BundleReader;
    components: readonly ComponentLayers[];
    gpu: GpuInventory | undefined;
    signal?: AbortSignal | undefined;
  },
): Promise<ServiceSpec[]> {
  // Reading the model shapes and image configs costs a pass over the bundle: only when a kind asks.
  if (!services.some((service) => adapterOf(service).planLaunch !== undefined)) return services;
  const subject = await loadCheckSubject({ bundle: input.bundlePath }, { signal: input.signal });
  const imageConfigs = new Map<string, unknown>();
  for (const component of input.components.filter((c) => c.kind === 'image')) {
    imageConfigs.set(component.name, await input.reader.readJson(blobPath(component.config.digest)));
  }
  const host = { gpu: input.gpu, workloads: subject?.workloads ?? [], imageConfigs };
  return services.map((service) => adapterOf(service).planLaunch?.(service, host) ?? service);
}
