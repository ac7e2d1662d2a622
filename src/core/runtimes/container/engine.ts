/**
 * Container services: one service runs one container, with podman or docker, whichever
 * the host has (DESIGN.md section 3). This module detects the engine with one probe and
 * renders everything as data: the `run` argument vector, the stop commands, and under
 * systemd a unit that runs the container in the foreground (`run --rm`), so systemd
 * restarts it and `journalctl -u` shows its log. Nothing here runs anything but the probe.
 *
 * GPUs go through CDI (`--device nvidia.com/gpu=all`) where the host has an NVIDIA CDI
 * spec, else through docker's `--gpus` with the NVIDIA runtime (runtime-facts 7).
 */
import path from 'node:path';
import { ApertusError } from '../../errors.js';
import { shellQuote } from '../../host/shell-quote.js';
import type { Transport } from '../../host/transport.js';
import { PROJECT_ROOT } from '../../project-root.js';
import { quoteSystemdArg, readUnitTemplate, systemdUnitName } from '../systemd.js';

export type ContainerEngine = 'podman' | 'docker';

/** How a container gets the host's NVIDIA GPUs. */
export type GpuAccess = 'cdi' | 'nvidia-runtime' | 'none';

/** What the host offers for containers, from one probe (`probeContainerHost`). */
export interface ContainerHost {
  engine: ContainerEngine;
  /** Absolute path of the engine's program on the host. */
  program: string;
  /** `podman --version` / `docker --version` as printed. */
  version: string;
  gpu: GpuAccess;
  /** CDI spec files that declare nvidia.com/gpu devices. */
  cdiSpecs: string[];
  /** systemd is PID 1 (`/run/systemd/system` exists): services become units. */
  systemd: boolean;
}

export type RestartPolicy = 'no' | 'on-failure' | 'always' | 'unless-stopped';

export interface PortBinding {
  /** Port on the host. */
  hostPort: number;
  /** Port the process listens on inside the container. */
  containerPort: number;
  /** Loopback unless the recipe opens the service to the network. */
  bind: '127.0.0.1' | '0.0.0.0';
}

export interface VolumeMount {
  /** Absolute path on the host. */
  source: string;
  /** Absolute path inside the container. */
  target: string;
  readOnly: boolean;
}

/** One container service, independent of the engine. */
export interface ContainerRunSpec {
  /** The service name from the recipe; the container is named `apertus-<service>`. */
  service: string;
  /** The image reference as loaded on the host (REGISTRY/NAME:TAG or @sha256:...). */
  image: string;
  /** Replaces the image's entrypoint: program first; further words go before `args`. */
  entrypoint?: readonly string[];
  args: readonly string[];
  env?: Readonly<Record<string, string>>;
  ports?: readonly PortBinding[];
  /** 'host' shares the host's network (no publishing needed); default: the engine's bridge. */
  network?: 'host' | 'none' | 'bridge';
  volumes?: readonly VolumeMount[];
  /** GPUs to give the container: 'all', or device indexes. None when absent. */
  gpus?: 'all' | readonly number[];
  restart?: RestartPolicy;
  /** Share the host's IPC namespace: vLLM's tensor parallelism needs it (runtime-facts 3.3). */
  ipcHost?: boolean;
  /** Writable tmpfs mounts inside the container (the image's root stays as shipped). */
  tmpfs?: readonly string[];
  /** Extra engine options this host needs (e.g. `--runtime runc`, ulimits); passed before the image. */
  engineArgs?: readonly string[];
}

const CONTAINER_PREFIX = 'apertus-';
/** Seconds a container has between SIGTERM and SIGKILL when stopped. */
export const CONTAINER_STOP_TIMEOUT_S = 10;

export function containerName(service: string): string {
  // systemdUnitName checks the same character set a container name allows.
  systemdUnitName(service);
  return `${CONTAINER_PREFIX}${service}`;
}

/** The probe: one `sh` round trip; each line is `key=value`. */
export const CONTAINER_PROBE_SCRIPT = `for e in podman docker; do
  p=$(command -v "$e" 2>/dev/null) || continue
  echo "engine=$e"; echo "program=$p"; echo "version=$("$p" --version 2>/dev/null | head -n 1)"
  break
done
for f in /etc/cdi/*.yaml /etc/cdi/*.json /var/run/cdi/*.yaml /var/run/cdi/*.json; do
  [ -f "$f" ] && grep -qs nvidia.com/gpu "$f" && echo "cdi=$f"
done
command -v nvidia-container-runtime >/dev/null 2>&1 && echo "nvidia_runtime=1"
[ -d /run/systemd/system ] && echo "systemd=1"
exit 0
`;

/** Parse the probe's output; undefined when the host has neither podman nor docker. */
export function parseContainerProbe(output: string): ContainerHost | undefined {
  const values = new Map<string, string[]>();
  for (const line of output.split('\n')) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq);
    values.set(key, [...(values.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  const engine = values.get('engine')?.[0];
  const program = values.get('program')?.[0];
  if ((engine !== 'podman' && engine !== 'docker') || program === undefined) return undefined;
  const cdiSpecs = values.get('cdi') ?? [];
  const nvidiaRuntime = values.has('nvidia_runtime');
  // Podman reads CDI natively; docker's CDI support depends on its version and daemon
  // settings, while `--gpus` with the NVIDIA runtime works on every docker that has it.
  let gpu: GpuAccess = 'none';
  if (engine === 'podman' && cdiSpecs.length > 0) gpu = 'cdi';
  else if (engine === 'docker' && nvidiaRuntime) gpu = 'nvidia-runtime';
  else if (engine === 'docker' && cdiSpecs.length > 0) gpu = 'cdi';
  return {
    engine,
    program,
    version: values.get('version')?.[0] ?? '',
    gpu,
    cdiSpecs,
    systemd: values.has('systemd'),
  };
}

/** Detect the host's container engine, GPU access and service manager in one round trip. */
export async function probeContainerHost(transport: Transport, signal?: AbortSignal): Promise<ContainerHost> {
  const result = await transport.exec('sh -s', { stdin: CONTAINER_PROBE_SCRIPT, signal, reject: false });
  const host = parseContainerProbe(result.stdout);
  if (host === undefined) {
    throw new ApertusError(
      'container-engine-missing',
      `${transport.description} has neither podman nor docker, which the bundle's container services need`,
      {
        kind: 'operation',
        hint: 'Install podman (or docker) on the host from your internal mirror, then run the install again.',
      },
    );
  }
  return host;
}

function invalid(spec: ContainerRunSpec, message: string, hint?: string): ApertusError {
  return new ApertusError('service-invalid', `service ${spec.service}: ${message}`, {
    hint: hint ?? `Fix service "${spec.service}" in the recipe.`,
  });
}

function gpuArgs(spec: ContainerRunSpec, host: ContainerHost): string[] {
  if (spec.gpus === undefined) return [];
  const ids = spec.gpus === 'all' ? ['all'] : spec.gpus.map(String);
  if (ids.length === 0) return [];
  if (host.gpu === 'cdi') {
    const devices = ids.flatMap((id) => ['--device', `nvidia.com/gpu=${id}`]);
    // SELinux labels would keep the container from the device nodes CDI adds.
    return host.engine === 'podman' ? [...devices, '--security-opt', 'label=disable'] : devices;
  }
  if (host.gpu === 'nvidia-runtime') {
    return ['--gpus', spec.gpus === 'all' ? 'all' : `"device=${ids.join(',')}"`];
  }
  throw new ApertusError(
    'container-gpu-unavailable',
    `service ${spec.service} needs GPUs, but ${host.engine} on this host has no NVIDIA CDI spec${host.engine === 'docker' ? ' and no NVIDIA runtime' : ''}`,
    {
      kind: 'operation',
      hint:
        host.engine === 'podman'
          ? 'Install the NVIDIA Container Toolkit and run `nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml` on the host, then install again.'
          : 'Install the NVIDIA Container Toolkit, run `nvidia-ctk runtime configure --runtime=docker` and restart docker on the host, then install again.',
    },
  );
}

function checkPort(spec: ContainerRunSpec, field: string, port: number): string {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalid(spec, `${field} must be an integer from 1 to 65535, got ${port}`);
  }
  return String(port);
}

function checkAbsolute(spec: ContainerRunSpec, field: string, value: string): void {
  if (!path.posix.isAbsolute(value) || value.includes(',') || value.includes(':')) {
    throw invalid(spec, `${field} "${value}" must be an absolute path without ',' or ':'`);
  }
}

/**
 * Options common to the detached and the systemd form, from `--name` to the image's args.
 * `restart` is the engine's policy; under systemd it is systemd's and left out here.
 */
function runOptions(spec: ContainerRunSpec, host: ContainerHost, restart: RestartPolicy | null): string[] {
  if (spec.image.trim() === '' || spec.image.startsWith('-'))
    throw invalid(spec, 'the image reference is empty');
  const args: string[] = ['--name', containerName(spec.service)];
  if (restart !== null) args.push('--restart', restart);
  const network = spec.network ?? 'bridge';
  if (network !== 'bridge') args.push('--network', network);
  if (spec.ipcHost) args.push('--ipc', 'host');
  for (const port of spec.ports ?? []) {
    if (port.bind !== '127.0.0.1' && port.bind !== '0.0.0.0') {
      throw invalid(spec, `ports bind to 127.0.0.1 or 0.0.0.0, not "${port.bind as string}"`);
    }
    const hostPort = checkPort(spec, 'hostPort', port.hostPort);
    const containerPort = checkPort(spec, 'containerPort', port.containerPort);
    // With the host's network the process binds the host port itself; nothing to publish.
    if (network === 'bridge') args.push('--publish', `${port.bind}:${hostPort}:${containerPort}/tcp`);
  }
  for (const volume of spec.volumes ?? []) {
    checkAbsolute(spec, 'volume source', volume.source);
    checkAbsolute(spec, 'volume target', volume.target);
    args.push('--volume', `${volume.source}:${volume.target}:${volume.readOnly ? 'ro' : 'rw'}`);
  }
  for (const dir of spec.tmpfs ?? []) {
    checkAbsolute(spec, 'tmpfs', dir);
    args.push('--tmpfs', dir);
  }
  for (const [key, value] of Object.entries(spec.env ?? {}).sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  )) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key))
      throw invalid(spec, `"${key}" is not an environment variable name`);
    args.push('--env', `${key}=${value}`);
  }
  args.push(...gpuArgs(spec, host));
  const [program, ...entrypointRest] = spec.entrypoint ?? [];
  // docker's --entrypoint takes one program; its further words lead the command instead.
  if (program !== undefined) args.push('--entrypoint', program);
  args.push(...(spec.engineArgs ?? []), spec.image, ...entrypointRest, ...spec.args);
  return args;
}

/** Detached `run`, for hosts without systemd: the engine restarts the container per `restart`. */
export function renderContainerRun(spec: ContainerRunSpec, host: ContainerHost): string[] {
  return [host.program, 'run', '--detach', ...runOptions(spec, host, spec.restart ?? 'on-failure')];
}

/** Foreground `run --rm`, for ExecStart of a unit: systemd supervises and restarts it. */
export function renderContainerRunForeground(spec: ContainerRunSpec, host: ContainerHost): string[] {
  return [host.program, 'run', '--rm', ...runOptions(spec, host, null)];
}

/** argv that stops the service's container, waiting CONTAINER_STOP_TIMEOUT_S before SIGKILL. */
export function renderContainerStop(service: string, host: Pick<ContainerHost, 'program'>): string[] {
  return [host.program, 'stop', '--time', String(CONTAINER_STOP_TIMEOUT_S), containerName(service)];
}

/** argv that removes the container, running or not. */
export function renderContainerRemove(service: string, host: Pick<ContainerHost, 'program'>): string[] {
  return [host.program, 'rm', '--force', containerName(service)];
}

/**
 * The shell line that (re)starts a service's container without systemd: a stale container
 * of the same name (from a previous release or a crash) is removed first.
 */
export function containerStartCommand(spec: ContainerRunSpec, host: ContainerHost): string {
  return [
    `${shellQuote(renderContainerRemove(spec.service, host))} >/dev/null 2>&1 || true`,
    shellQuote(renderContainerRun(spec, host)),
  ].join('\n');
}

/** The shell line that stops and removes a service's container; a missing one is not an error. */
export function containerStopCommand(service: string, host: Pick<ContainerHost, 'program'>): string {
  return [
    `${shellQuote(renderContainerStop(service, host))} >/dev/null 2>&1 || true`,
    `${shellQuote(renderContainerRemove(service, host))} >/dev/null 2>&1 || true`,
  ].join('\n');
}

export const CONTAINER_UNIT_TEMPLATE = path.join(
  PROJECT_ROOT,
  'templates',
  'systemd',
  'apertus-container.service',
);

/** systemd's Restart= for an engine policy: systemd restarts, the engine must not. */
function systemdRestart(policy: RestartPolicy): string {
  if (policy === 'unless-stopped') return 'always';
  return policy;
}

/** The unit file for one container service; its name is `systemdUnitName(spec.service)`. */
export function renderContainerUnit(
  spec: ContainerRunSpec,
  host: ContainerHost,
  options: { description?: string; template?: string } = {},
): string {
  const unitName = systemdUnitName(spec.service);
  if (!host.program.startsWith('/')) {
    throw invalid(spec, `the container engine path "${host.program}" is not absolute`);
  }
  const description = options.description ?? `apertus service ${spec.service} (container ${spec.image})`;
  const values: Record<string, string> = {
    unitName,
    description: unitText('Description', description),
    execStartPre: `-${renderContainerRemove(spec.service, host).map(quoteSystemdArg).join(' ')}`,
    execStart: renderContainerRunForeground(spec, host).map(quoteSystemdArg).join(' '),
    execStop: renderContainerStop(spec.service, host).map(quoteSystemdArg).join(' '),
    restart: systemdRestart(spec.restart ?? 'on-failure'),
    timeoutStopSec: String(CONTAINER_STOP_TIMEOUT_S + 10),
  };
  const template = options.template ?? readUnitTemplate(CONTAINER_UNIT_TEMPLATE);
  return template.replace(/\{\{(\w+)\}\}/g, (_match, key: string) => {
    const value = values[key];
    if (value === undefined) {
      throw new ApertusError('template-invalid', `container unit template names unknown field {{${key}}}`, {
        kind: 'operation',
      });
    }
    return value;
  });
}

/** A free-text unit setting: one line, with systemd's `%` specifiers escaped. */
function unitText(field: string, value: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\x00-\x1f\x7f]/.test(value)) {
    throw new ApertusError(
      'service-invalid',
      `${field} contains a control character, which a unit file cannot hold`,
    );
  }
  return value.replaceAll('%', '%%');
}
