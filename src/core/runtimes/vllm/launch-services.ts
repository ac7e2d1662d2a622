/**
 * The vLLM services of a bundle as this host will run them: image and flags chosen by
 * src/core/runtimes/vllm/launch.ts from the GPUs the install's host check probed. Done
 * before staging, so the release records what ran and a rollback restarts it the same way.
 */

import type { GpuInventory } from '../../gpu/gpu-inventory.js';
import type { BundleReader } from '../../layout/bundle-reader.js';
import { blobPath } from '../../layout/names.js';
import type { ComponentLayers, ServiceSpec } from '../../layout/types.js';
import { loadCheckSubject } from '../../operations/check-subject.js';
import { planVllmLaunch } from './launch.js';

export async function launchVllmServices(
  services: ServiceSpec[],
  input: {
    bundlePath: string;
    reader: BundleReader;
    components: readonly ComponentLayers[];
    gpu: GpuInventory | undefined;
    signal?: AbortSignal | undefined;
  },
): Promise<ServiceSpec[]> {
  if (!services.some((s) => s.runtime === 'vllm')) return services;
  const subject = await loadCheckSubject({ bundle: input.bundlePath }, { signal: input.signal });
  const imageConfigs = new Map<string, unknown>();
  for (const component of input.components.filter((c) => c.kind === 'image')) {
    imageConfigs.set(component.name, await input.reader.readJson(blobPath(component.config.digest)));
  }
  return services.map((service) =>
    service.runtime === 'vllm'
      ? planVllmLaunch(service, {
          gpu: input.gpu,
          // check-subject.ts labels a model component's vLLM workload by its config.json.
          workload: subject?.workloads.find(
            (w) => w.runtime === 'vllm' && w.label === `${service.model.component}/config.json (vLLM)`,
          ),
          imageConfigs,
        })
      : service,
  );
}
