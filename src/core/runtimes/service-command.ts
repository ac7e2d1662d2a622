/**
 * The command each kind of service runs on the host, from the release directory it was
 * staged in, and the order services start in (a service after those it calls).
 */
import path from 'node:path/posix';
import { ApertusError } from '../errors.js';
import type { ServiceSpec } from '../layout/types.js';
import { renderLlamacppCommand } from './llamacpp/command.js';
import { RAG_PATHS, ragDataPaths, renderRagCommand } from './rag/rag-service.js';
import { RUNTIME_PATHS } from './runtime-files.js';

/** The runtime component's files inside a release. */
export function runtimePaths(releaseDir: string): { node: string; supervisor: string; dir: string } {
  const dir = path.join(releaseDir, 'runtime');
  return {
    dir,
    node: path.join(dir, RUNTIME_PATHS.node),
    supervisor: path.join(dir, RUNTIME_PATHS.supervisor),
  };
}

/** argv of a service, program first. `root` is the install root, where the RAG data lives. */
export function renderServiceCommand(service: ServiceSpec, releaseDir: string, root: string): string[] {
  const runtime = runtimePaths(releaseDir);
  switch (service.runtime) {
    case 'llamacpp':
      return renderLlamacppCommand(service, {
        node: runtime.node,
        server: path.join(runtime.dir, RUNTIME_PATHS.server),
        modelPath: path.join(releaseDir, service.model.component, service.model.path),
      });
    case 'rag': {
      const data = ragDataPaths(root);
      return renderRagCommand(service, {
        node: runtime.node,
        server: path.join(runtime.dir, RAG_PATHS.server),
        dataDir: data.dataDir,
        auditLog: data.auditLog,
      });
    }
    case 'vllm':
    case 'container':
      // Containers run through the engine: src/core/runtimes/container/service.ts renders them.
      throw new ApertusError(
        'service-invalid',
        `service ${service.name} runs in a container, not as a command of the runtime`,
        { kind: 'operation' },
      );
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
    for (const name of dependenciesOf(service)) {
      const dependency = byName.get(name);
      if (dependency) visit(dependency, [...chain, service.name]);
    }
    state.set(service.name, 'done');
    ordered.push(service);
  };
  for (const service of services) visit(service, []);
  return ordered;
}

function dependenciesOf(service: ServiceSpec): readonly string[] {
  return service.runtime === 'rag' ? (service.dependsOn ?? []) : [];
}
