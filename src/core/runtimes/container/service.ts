/**
 * Container services of a release on a host, whatever runs in them: started as systemd
 * units where systemd runs, else detached with the engine's restart policy (engine.ts
 * renders both), and stopped with whichever engine the host has.
 */
import path from 'node:path/posix';
import { ApertusError } from '../../errors.js';
import { shellQuote } from '../../host/shell-quote.js';
import type { Transport } from '../../host/transport.js';
import type { HostLayout } from '../../target/layout.js';
import type { StartContext } from '../adapter.js';
import { installUnitCommands, managedStopScript } from '../service-manager.js';
import {
  type ContainerRunSpec,
  containerName,
  containerStartCommand,
  renderContainerUnit,
} from './engine.js';
import type { ContainerServiceSpec } from './spec.js';

/** Host directories of a container service that outlive releases (vLLM's caches, Qdrant's storage). */
export function containerDataDir(root: string, service: string): string {
  return path.join(root, 'data', service);
}

/** The engine-neutral run spec of a plain container service in a release. */
export function containerRunSpec(
  service: ContainerServiceSpec,
  releaseDir: string,
  root: string,
  engineArgs?: readonly string[],
): ContainerRunSpec {
  const data = containerDataDir(root, service.name);
  return {
    service: service.name,
    image: service.image.reference,
    args: service.args,
    env: service.env,
    ports: [{ hostPort: service.port, containerPort: service.containerPort, bind: service.bind }],
    volumes: [
      ...(service.modelComponent
        ? [
            {
              source: path.join(releaseDir, service.modelComponent),
              target: path.join('/models', service.modelComponent),
              readOnly: true,
            },
          ]
        : []),
      ...(service.dataDir ? [{ source: data, target: service.dataDir, readOnly: false }] : []),
    ],
    restart: 'on-failure',
    ...(engineArgs ? { engineArgs } : {}),
  };
}

/** Host directories the run spec mounts read-write; created before the container starts. */
function writableSources(spec: ContainerRunSpec): string[] {
  return (spec.volumes ?? []).filter((v) => !v.readOnly).map((v) => v.source);
}

/** Starts one container service: a unit under systemd, else a detached container. */
export async function startContainerService(
  transport: Transport,
  spec: ContainerRunSpec,
  context: StartContext,
): Promise<void> {
  const host = await context.containerHost();
  const mkdirs = writableSources(spec).map((dir) => shellQuote(['mkdir', '-p', dir]));
  const command =
    context.manager === 'systemd'
      ? [...mkdirs, ...installUnitCommands(spec.service, renderContainerUnit(spec, host))].join(' && ')
      : [...mkdirs, containerStartCommand(spec, host)].join('\n');
  const result = await transport.exec(command, { reject: false });
  if (result.exitCode !== 0) {
    throw new ApertusError(
      'service-start-failed',
      `Starting container service ${spec.service} (${spec.image}) with ${host.engine} failed with exit code ${result.exitCode}: ${result.stderr.trim().slice(-500)}`,
      {
        kind: 'operation',
        hint: `See \`${host.engine} logs ${containerName(spec.service)}\` on the host, fix what it says, then install again.`,
      },
    );
  }
}

/**
 * Shell lines that stop a container service: its unit or supervisor entry, then its
 * container with whichever engine the host has, with no probe first; stopping what does
 * not run is not an error.
 */
export function containerStopScript(service: string, layout: HostLayout): string {
  const name = shellQuote([containerName(service)]);
  return [
    managedStopScript(service, layout),
    `for e in podman docker; do command -v "$e" >/dev/null 2>&1 || continue; "$e" stop --time 10 ${name} >/dev/null 2>&1 || true; "$e" rm --force ${name} >/dev/null 2>&1 || true; break; done`,
  ].join('\n');
}
