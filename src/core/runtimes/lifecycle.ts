/**
 * The services of a release on a host, whatever their kinds: checked before anything
 * changes, started in dependency order, stopped in reverse. Each kind's adapter knows how.
 */
import { ApertusError } from '../errors.js';
import type { Transport } from '../host/transport.js';
import type { HostLayout } from '../target/layout.js';
import type { ServiceManager } from '../target/preflight.js';
import type { HostProvision, StartContext } from './adapter.js';
import { type ContainerHost, probeContainerHost } from './container/engine.js';
import { adapterOf, type ServiceSpec } from './registry.js';

/** Each service's checks on the host before the install changes anything (the RAG collection lock). */
export async function preflightServices(
  transport: Transport,
  layout: HostLayout,
  services: readonly ServiceSpec[],
  signal?: AbortSignal,
  provision: HostProvision = {},
): Promise<void> {
  for (const service of services)
    await adapterOf(service).preflight?.(transport, layout, service, signal, provision);
}

/** What the operator gave for this host (TLS files) and per-host secrets, put in place before any service starts. */
export async function provisionServices(
  transport: Transport,
  layout: HostLayout,
  services: readonly ServiceSpec[],
  provision: HostProvision,
  signal?: AbortSignal,
): Promise<void> {
  for (const service of services)
    await adapterOf(service).provision?.(transport, layout, service, provision, signal);
}

export async function startServices(
  transport: Transport,
  layout: HostLayout,
  releaseDir: string,
  services: ServiceSpec[],
  manager: ServiceManager,
): Promise<void> {
  let containerHost: Promise<ContainerHost> | undefined;
  const context: StartContext = {
    layout,
    releaseDir,
    manager,
    // One probe for the release's containers: which engine, GPU access.
    containerHost: () => {
      containerHost ??= probeContainerHost(transport);
      return containerHost;
    },
  };
  for (const service of startOrder(services)) await adapterOf(service).start(transport, service, context);
}

/** Stops services, each before the ones it calls (the RAG service before its model servers). */
export async function stopServices(
  transport: Transport,
  layout: HostLayout,
  services: ServiceSpec[],
): Promise<void> {
  for (const service of startOrder(services).reverse()) {
    await transport.exec(adapterOf(service).stopScript(service, layout));
  }
}

/** Services ordered so each comes after the ones it depends on; stop them in reverse. */
export function startOrder(services: readonly ServiceSpec[]): ServiceSpec[] {
  const byName = new Map(services.map((s) => [s.name, s]));
  const ordered: ServiceSpec[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (service: ServiceSpec, chain: string[]) => {
    const seen = state.get(service.name);
    if (seen === 'done') return;
    if (seen === 'visiting') {
      throw new ApertusError(
        'service-cycle',
        `Services depend on each other in a cycle: ${[...chain, service.name].join(' -> ')}.`,
        {
          hint: 'Fix the services of the recipe so that no service calls itself through others.',
        },
      );
    }
    state.set(service.name, 'visiting');
    for (const name of adapterOf(service).dependsOn(service)) {
      const dependency = byName.get(name);
      if (dependency) visit(dependency, [...chain, service.name]);
    }
    state.set(service.name, 'done');
    ordered.push(service);
  };
  for (const service of services) visit(service, []);
  return ordered;
}
