/**
 * Container services of a release: recipe entries turned into bundle ServiceSpecs at
 * bundle time, and started or stopped on the host at install time, as systemd units where
 * systemd runs, else detached with the engine's restart policy (container.ts renders both).
 */
import path from 'node:path/posix';
import { ApertusError } from '../../errors.js';
import { DEFAULT_GPU_MEMORY_UTILIZATION } from '../../gpu/fit.js';
import { shellQuote } from '../../host/shell-quote.js';
import type { Transport } from '../../host/transport.js';
import type { ContainerServiceSpec, ServiceImage, ServiceSpec, VllmServiceSpec } from '../../layout/types.js';
import { parseOciReference, repoTag } from '../../sources/oci/parse-oci-reference.js';
import type { Recipe } from '../../spec/recipe-schema.js';
import { systemdUnitName } from '../systemd.js';
import { renderVllmContainer } from '../vllm/vllm.js';
import {
  type ContainerHost,
  type ContainerRunSpec,
  containerName,
  containerStartCommand,
  probeContainerHost,
  renderContainerUnit,
} from './engine.js';
import type { ContainerRecipeService, VllmRecipeService } from './recipe-schema.js';

export type ContainerSpec = VllmServiceSpec | ContainerServiceSpec;

export function isContainerService(service: ServiceSpec): service is ContainerSpec {
  return service.runtime === 'vllm' || service.runtime === 'container';
}

/** The image as the host's engine names it after loading: what install-plan.ts tags it with. */
function serviceImage(recipe: Recipe, recipeFile: string, service: string, component: string): ServiceImage {
  const entry = recipe.components.find((c) => c.name === component);
  if (entry?.kind !== 'image') {
    throw new ApertusError(
      'recipe-image-missing',
      `Service ${service} runs image "${component}", which is not an image component of the recipe.`,
      { hint: `Name a component of kind image in services[].image of ${recipeFile}.` },
    );
  }
  const reference = parseOciReference(entry.source.replace(/^oci:/, ''));
  return { component, reference: repoTag(reference, reference.digest ?? '') };
}

/** A recipe's vllm or container service as the bundle records it. */
export function resolveContainerService(
  s: VllmRecipeService | ContainerRecipeService,
  recipe: Recipe,
  recipeFile: string,
): ContainerSpec {
  const image = serviceImage(recipe, recipeFile, s.name, s.image);
  if (s.runtime === 'container') {
    return {
      name: s.name,
      runtime: 'container',
      image,
      port: s.port,
      containerPort: s.containerPort,
      bind: s.bind,
      args: s.args,
      env: s.env,
      ...(s.model ? { modelComponent: s.model } : {}),
      ...(s.dataDir ? { dataDir: s.dataDir } : {}),
      healthPath: s.healthPath,
      ...(s.openai ? { openai: s.openai } : {}),
    };
  }
  if (!recipe.components.some((c) => c.name === s.model && c.kind === 'model')) {
    throw new ApertusError(
      'recipe-model-missing',
      `Service ${s.name} serves "${s.model}", which is not a model component of the recipe.`,
      { hint: `Name a component of kind model in services[].model of ${recipeFile}.` },
    );
  }
  return {
    name: s.name,
    runtime: 'vllm',
    image,
    model: { component: s.model, path: '', id: s.modelId },
    port: s.port,
    bind: s.bind,
    embeddings: s.embeddings,
    dtype: s.dtype,
    ...(s.maxModelLen === undefined ? {} : { maxModelLen: s.maxModelLen }),
    ...(s.tensorParallelSize === undefined ? {} : { tensorParallelSize: s.tensorParallelSize }),
    ...(s.gpuMemoryUtilization === undefined ? {} : { gpuMemoryUtilization: s.gpuMemoryUtilization }),
    extraArgs: s.extraArgs,
    ...(s.alternativeImages.length > 0
      ? {
          alternativeImages: s.alternativeImages.map((component) =>
            serviceImage(recipe, recipeFile, s.name, component),
          ),
        }
      : {}),
  };
}

/** Host directories of a container service that outlive releases (vLLM's caches, Qdrant's storage). */
export function containerDataDir(root: string, service: string): string {
  return path.join(root, 'data', service);
}

/** The engine-neutral run spec of a service in a release. */
export function containerRunSpec(
  service: ContainerSpec,
  releaseDir: string,
  root: string,
  engineArgs?: readonly string[],
): ContainerRunSpec {
  const data = containerDataDir(root, service.name);
  if (service.runtime === 'vllm') {
    return renderVllmContainer({
      service: service.name,
      image: service.image.reference,
      modelDir: path.join(releaseDir, service.model.component),
      servedModelName: service.model.id,
      port: service.port,
      bind: service.bind,
      cacheDir: path.join(data, 'cache'),
      fit: {
        tensorParallelSize: service.tensorParallelSize ?? 1,
        ...(service.maxModelLen === undefined ? {} : { maxModelLen: service.maxModelLen }),
        gpuMemoryUtilization: service.gpuMemoryUtilization ?? DEFAULT_GPU_MEMORY_UTILIZATION,
      },
      dtype: service.dtype,
      embeddings: service.embeddings,
      extraArgs: service.extraArgs,
      ...(engineArgs ? { engineArgs } : {}),
    });
  }
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

/**
 * Starts one container service: a unit under systemd, else a detached container. `host`
 * is probed when not given; `engineArgs` are options this host's engine needs.
 */
export async function startContainerService(
  transport: Transport,
  input: {
    service: ContainerSpec;
    releaseDir: string;
    root: string;
    manager: 'systemd' | 'supervisor';
    host?: ContainerHost;
    engineArgs?: readonly string[];
    signal?: AbortSignal;
  },
): Promise<ContainerHost> {
  const host = input.host ?? (await probeContainerHost(transport, input.signal));
  const spec = containerRunSpec(input.service, input.releaseDir, input.root, input.engineArgs);
  const mkdirs = writableSources(spec).map((dir) => shellQuote(['mkdir', '-p', dir]));
  let command: string;
  if (input.manager === 'systemd') {
    const unit = systemdUnitName(input.service.name);
    command = [
      ...mkdirs,
      `printf '%s' ${shellQuote([renderContainerUnit(spec, host)])} > ${shellQuote([path.join('/etc/systemd/system', unit)])}`,
      'systemctl daemon-reload',
      shellQuote(['systemctl', 'restart', unit]),
    ].join(' && ');
  } else {
    command = [...mkdirs, containerStartCommand(spec, host)].join('\n');
  }
  const result = await transport.exec(command, { signal: input.signal, reject: false });
  if (result.exitCode !== 0) {
    throw new ApertusError(
      'service-start-failed',
      `Starting container service ${input.service.name} (${spec.image}) with ${host.engine} failed with exit code ${result.exitCode}: ${result.stderr.trim().slice(-500)}`,
      {
        kind: 'operation',
        hint: `See \`${host.engine} logs ${containerName(input.service.name)}\` on the host, fix what it says, then install again.`,
      },
    );
  }
  return host;
}

/**
 * Shell lines that stop a service's container with whichever engine the host has, with no
 * probe first; stopping what does not run is not an error.
 */
export function containerStopScript(service: string): string {
  const name = shellQuote([containerName(service)]);
  return `for e in podman docker; do command -v "$e" >/dev/null 2>&1 || continue; "$e" stop --time 10 ${name} >/dev/null 2>&1 || true; "$e" rm --force ${name} >/dev/null 2>&1 || true; break; done`;
}
