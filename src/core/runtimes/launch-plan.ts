/**
 * The services of a bundle as one host will run them: each kind that chooses something
 * per host (vLLM: its image by the driver, its flags by the fit plan of the GPUs the
 * install's host check probed) does it here, before staging, so the release records what
 * ran and a rollback restarts it the same way.
 */
import type { LaunchHost } from './adapter.js';
import { adapterOf, type ServiceSpec } from './registry.js';

export function planLaunches(services: ServiceSpec[], host: LaunchHost): ServiceSpec[] {
  return services.map((service) => adapterOf(service).planLaunch?.(service, host) ?? service);
}
