/**
 * Every kind of service apertus runs, registered in one place (STYLE.md 16). The recipe's
 * service union, the bundle's ServiceSpec schema and the JSON Schema editors use are built
 * from this list; adding a kind is its folder under runtimes/ and one line here.
 */
import { z } from 'zod';
import { ApertusError } from '../errors.js';
import type { RuntimeAdapter, ServiceBase, ServiceReportEntry } from './adapter.js';
import { containerRuntime } from './container/adapter.js';
import { gatewayRuntime } from './gateway/adapter.js';
import { llamacppRuntime } from './llamacpp/adapter.js';
import { ragRuntime } from './rag/adapter.js';
import { vllmRuntime } from './vllm/adapter.js';

export const RUNTIMES = [llamacppRuntime, ragRuntime, vllmRuntime, containerRuntime, gatewayRuntime] as const;

type Runtimes = typeof RUNTIMES;
type Adapter = Runtimes[number];

/** The tuple of each adapter's `Key` schema, in registry order (what z.discriminatedUnion takes). */
type SchemasOf<T extends readonly unknown[], Key extends string> = {
  -readonly [I in keyof T]: T[I] extends Record<Key, infer Schema> ? Schema : never;
};

const recipeSchemas = RUNTIMES.map((runtime) => runtime.recipeSchema) as unknown as SchemasOf<
  Runtimes,
  'recipeSchema'
>;
const bundleSchemas = RUNTIMES.map((runtime) => runtime.bundleSchema) as unknown as SchemasOf<
  Runtimes,
  'bundleSchema'
>;

/** A service entry of a recipe, of any registered kind. */
export const recipeServiceSchema = z.discriminatedUnion('runtime', recipeSchemas);

/** A service of a bundle config, of any registered kind. */
export const serviceSpecSchema = z.discriminatedUnion('runtime', bundleSchemas);

/** What a service needs to run; each kind's own spec is in its folder. */
export type ServiceSpec = z.output<typeof serviceSpecSchema>;

/** The adapter of a bundle service's kind. */
export function adapterOf<S extends ServiceSpec>(service: S): RuntimeAdapter<S, ServiceBase> {
  return find(service.runtime) as unknown as RuntimeAdapter<S, ServiceBase>;
}

/** The adapter of a recipe service's kind. */
export function recipeAdapterOf<R extends ServiceBase>(service: R): RuntimeAdapter<ServiceSpec, R> {
  return find(service.runtime) as unknown as RuntimeAdapter<ServiceSpec, R>;
}

function find(runtime: string): Adapter {
  const adapter = RUNTIMES.find((candidate) => candidate.runtime === runtime);
  // The schemas admit only registered kinds; a release record on a host is read without them.
  if (adapter === undefined) {
    throw new ApertusError('service-invalid', `This apertus runs no service of runtime "${runtime}".`, {
      kind: 'operation',
      hint: 'The release was installed by another apertus version: manage it with that version.',
    });
  }
  return adapter;
}

/** A service's entry in the install report. */
export function serviceReport(
  service: ServiceSpec,
): { name: string; runtime: string; port: number } & ServiceReportEntry {
  return {
    name: service.name,
    runtime: service.runtime,
    port: service.port,
    ...adapterOf(service).report(service),
  };
}

/** One phrase for `apertus inspect`: what the service serves or runs. */
export function serviceSummary(service: ServiceSpec): string {
  return adapterOf(service).summary(service);
}

/** The release needs the runtime component (Node and our servers) to run these recipe services. */
export function needsRuntimeComponent(services: readonly ServiceBase[]): boolean {
  return services.some((service) => find(service.runtime).needsRuntimeComponent);
}

/** The host needs podman or docker to run these services. */
export function needsContainerEngine(services: readonly ServiceBase[]): boolean {
  return services.some((service) => find(service.runtime).needsContainerEngine);
}

/** What `apertus status` warns about in how a service runs (plain HTTP on the network). */
export function serviceWarnings(service: ServiceSpec): string[] {
  return adapterOf(service).warnings?.(service) ?? [];
}

/** Every port a service listens on (the gateway: its metrics port and the one it exposes). */
export function servicePorts(service: ServiceSpec): number[] {
  return adapterOf(service).ports?.(service) ?? [service.port];
}
