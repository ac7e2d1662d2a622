/**
 * Host checks that need no GPU: OS, architecture, libc, clock, install root, disk per
 * filesystem, ports, memory for CPU models, container runtime and NVIDIA toolkit.
 * Pure functions of the probe and the subject.
 */
import { type CpuFitReport, planCpuFit } from '../gpu/fit.js';
import { formatGB } from '../gpu/units.js';
import type { CheckSubject } from '../operations/check-subject.js';
import { planInstall } from '../operations/install-plan.js';
import { hostLayout } from '../target/layout.js';
import type { HostProbe } from '../target/probe.js';
import { judgeRoot } from '../target/root-safety.js';
import type { CheckResult } from './check-result.js';

/**
 * Node's official Linux x64 binaries (Node 18 and later, so the Node 20 the bundle carries)
 * need glibc 2.28 (Node's BUILDING.md platform list); musl needs a different build.
 */
export const MIN_GLIBC_FOR_NODE = '2.28';

/** Skew at which audit records of operator and host stop ordering sensibly. */
export const CLOCK_SKEW_WARN_SECONDS = 30;

/** Space left over after an install for logs, audit records and state. */
export const DISK_HEADROOM_BYTES = 1e9;

function versionAtLeast(version: string, min: string): boolean {
  const a = version.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const diff = (a[i] ?? 0) - (b[i] ?? 0);
    if (diff !== 0) return diff > 0;
  }
  return true;
}

export function checkOs(probe: HostProbe): CheckResult {
  const kernel = probe.kernel ?? 'unknown kernel';
  if (!kernel.startsWith('Linux')) {
    return {
      id: 'os',
      status: 'fail',
      detail: `${kernel}: apertus installs on Linux hosts`,
      hint: 'Use a Linux host (any distribution with glibc, sh and tar).',
    };
  }
  if (!probe.os?.prettyName) {
    return {
      id: 'os',
      status: 'warn',
      detail: `${kernel}; /etc/os-release is missing, so the distribution is unknown`,
      hint: 'Nothing to do if the host is a standard distribution; apertus reads os-release only for the report.',
    };
  }
  return { id: 'os', status: 'ok', detail: `${probe.os.prettyName}, ${kernel}` };
}

/** The runtime the bundle ships (node + llama.cpp prebuilt) is linux-x64 only (src/core/runtimes/runtime-files.ts). */
export function checkArch(probe: HostProbe, subject: CheckSubject | undefined): CheckResult {
  const arch = probe.arch ?? 'unknown';
  const needsX64 = subject?.needsNodeRuntime ?? false;
  if (arch === 'x86_64') return { id: 'arch', status: 'ok', detail: arch };
  if (needsX64) {
    return {
      id: 'arch',
      status: 'fail',
      detail: `${arch}: the bundle's llamacpp runtime is built for x86_64 only`,
      hint: 'Install on an x86_64 host, or serve the model with vLLM (multi-arch images) instead.',
    };
  }
  return {
    id: 'arch',
    status: arch === 'aarch64' ? 'ok' : 'warn',
    detail:
      arch === 'aarch64'
        ? `${arch} (vLLM images are amd64 and arm64)`
        : `${arch}: not a platform apertus bundles target`,
    ...(arch === 'aarch64' ? {} : { hint: 'Use an x86_64 or aarch64 host.' }),
  };
}

export function checkLibc(probe: HostProbe, subject: CheckSubject | undefined): CheckResult {
  const needsNode = subject?.needsNodeRuntime ?? false;
  const libc = probe.libc;
  if (!libc) {
    return {
      id: 'libc',
      status: needsNode ? 'warn' : 'ok',
      detail: 'neither getconf GNU_LIBC_VERSION nor ldd --version answered',
      ...(needsNode
        ? { hint: `The bundled Node needs glibc >= ${MIN_GLIBC_FOR_NODE}; check with ldd --version.` }
        : {}),
    };
  }
  const name = `${libc.family} ${libc.version ?? '(version unknown)'}`;
  if (libc.family === 'musl') {
    return {
      id: 'libc',
      status: needsNode ? 'fail' : 'ok',
      detail: needsNode ? `${name}: the bundled Node and llama.cpp are built for glibc` : name,
      ...(needsNode
        ? {
            hint: 'Use a glibc distribution (Debian, Ubuntu, RHEL and derivatives) for the llamacpp runtime.',
          }
        : {}),
    };
  }
  if (needsNode && libc.version && !versionAtLeast(libc.version, MIN_GLIBC_FOR_NODE)) {
    return {
      id: 'libc',
      status: 'fail',
      detail: `${name}: the bundled Node 20 needs glibc >= ${MIN_GLIBC_FOR_NODE}`,
      hint: 'Upgrade the distribution (RHEL/Alma/Rocky 8, Debian 10, Ubuntu 20.04 or newer).',
    };
  }
  return { id: 'libc', status: 'ok', detail: name };
}

/** Skew from one round trip: the host's clock was read between sentAt and receivedAt on ours. */
export function checkClock(probe: HostProbe, sentAtMs: number, receivedAtMs: number): CheckResult {
  if (probe.clockSeconds === undefined) {
    return {
      id: 'clock',
      status: 'warn',
      detail: 'the host did not report its time',
      hint: 'Check `date -u` on the host.',
    };
  }
  const host = probe.clockSeconds * 1000;
  const skewMs = host < sentAtMs ? host - sentAtMs : host > receivedAtMs ? host - receivedAtMs : 0;
  const seconds = Math.abs(skewMs) / 1000;
  const direction = skewMs < 0 ? 'behind' : 'ahead of';
  const detail =
    skewMs === 0
      ? `host clock agrees with this machine's (within the ${Math.round(receivedAtMs - sentAtMs)} ms round trip)`
      : `host clock is ${seconds.toFixed(1)} s ${direction} this machine's`;
  if (seconds <= CLOCK_SKEW_WARN_SECONDS) return { id: 'clock', status: 'ok', detail };
  return {
    id: 'clock',
    status: 'warn',
    detail,
    hint: 'Set the host clock (an internal NTP server, or `date -s` from a trusted clock): install reports and audit records carry its timestamps.',
  };
}

export function checkInstallRoot(probe: HostProbe): CheckResult {
  const { root } = probe;
  const problems = judgeRoot(root.entries, hostLayout(root.path), probe.uid);
  if (problems.length > 0) {
    return {
      id: 'install-root',
      status: 'fail',
      detail: `${root.path} is not safe to install into: ${problems.map((p) => `${p.path} ${p.problem}`).join('; ')}`,
      hint: `Run as root on the host, after checking who made these entries: ${problems.map((p) => p.fix).join('; ')}`,
    };
  }
  if (root.writable) {
    return {
      id: 'install-root',
      status: 'ok',
      detail: root.exists
        ? `${root.path} is writable by ${probe.user ?? 'the login user'} and nobody else${root.current ? `; current release ${root.current}` : ''}`
        : `${root.path} does not exist yet; ${root.existingDir ?? 'its parent'} is writable by ${probe.user ?? 'the login user'}`,
    };
  }
  return {
    id: 'install-root',
    status: 'fail',
    detail: `${probe.user ?? 'the login user'} cannot write ${root.exists ? root.path : (root.existingDir ?? root.path)}`,
    hint: 'Log in as root (or a user who owns the directory), or set root: in the inventory (--root) to a directory that user may write.',
  };
}

export interface DiskNeeds {
  /** Per filesystem the install writes. */
  byPath: Array<{ path: string; bytes: number; detail: string }>;
  /** How many of the bundle's blobs the host already holds (bundle checks only). */
  present?: { blobs: number; total: number };
}

/** Bytes the install writes under the root: the install planner's figure for a bundle (only missing blobs). */
export function diskNeeds(
  probe: HostProbe,
  subject: CheckSubject | undefined,
): DiskNeeds | { error: string } | undefined {
  const disk = subject?.disk;
  if (!disk) return undefined;
  if (disk.kind === 'estimate')
    return { byPath: [{ path: probe.root.path, bytes: disk.bytes, detail: disk.detail }] };
  try {
    const plan = planInstall(disk.plan, probe, hostLayout(probe.root.path));
    return {
      byPath: [
        {
          path: probe.root.path,
          bytes: plan.diskNeededBytes,
          detail: `${plan.uploads.length} of ${plan.blobs.total} blobs to upload (${plan.blobs.present} already on the host)`,
        },
      ],
      present: { blobs: plan.blobs.present, total: plan.blobs.total },
    };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

export function checkDisks(probe: HostProbe, subject: CheckSubject | undefined): CheckResult[] {
  const needs = diskNeeds(probe, subject);
  if (needs && 'error' in needs) {
    return [
      {
        id: 'disk',
        status: 'fail',
        detail: `the install planner refused the bundle: ${needs.error}`,
        hint: 'Run `apertus verify` on the bundle; rebuild it from its recipe if it was not written by this apertus.',
      },
    ];
  }
  // Directories on one filesystem draw on the same free space: sum their needs per mount.
  const byMount = new Map<
    string,
    { mount: string; available?: number; bytes: number; paths: string[]; details: string[]; error?: string }
  >();
  for (const disk of probe.disks) {
    const need = needs?.byPath.find((n) => n.path === disk.path);
    const key = disk.mount ?? `?${disk.path}`;
    const entry = byMount.get(key) ?? { mount: disk.mount ?? disk.path, bytes: 0, paths: [], details: [] };
    if (disk.availableBytes !== undefined) entry.available = disk.availableBytes;
    if (disk.error) entry.error = disk.error;
    entry.paths.push(disk.path);
    if (need) {
      entry.bytes += need.bytes;
      entry.details.push(need.detail);
    }
    byMount.set(key, entry);
  }
  return [...byMount.values()].map((fs): CheckResult => {
    const subjectName = fs.mount;
    if (fs.available === undefined) {
      return {
        id: 'disk',
        subject: subjectName,
        status: 'warn',
        detail: `free space unknown: ${fs.error ?? 'df did not answer'}`,
        hint: `Check with df -h ${fs.paths[0]} on the host.`,
      };
    }
    const free = `${formatGB(fs.available)} free on ${fs.mount} for ${fs.paths.join(', ')}`;
    if (!needs) return { id: 'disk', subject: subjectName, status: 'ok', detail: free };
    const needed = `the install writes ${formatGB(fs.bytes)} there (${fs.details.join('; ')})`;
    if (fs.bytes > fs.available) {
      return {
        id: 'disk',
        subject: subjectName,
        status: 'fail',
        detail: `No space left on ${fs.mount} for ${fs.paths.join(', ')}: needs ${formatGB(fs.bytes)}, has ${formatGB(fs.available)} (${fs.details.join('; ')})`,
        hint: `Free ${formatGB(fs.bytes - fs.available)} on ${fs.mount}, or set root: in the inventory (--root) to a larger filesystem.`,
      };
    }
    if (fs.available - fs.bytes < DISK_HEADROOM_BYTES) {
      return {
        id: 'disk',
        subject: subjectName,
        status: 'warn',
        detail: `${free}; ${needed}, leaving less than ${formatGB(DISK_HEADROOM_BYTES)} for logs and audit records`,
        hint: `Free some space on ${fs.mount} before installing.`,
      };
    }
    return { id: 'disk', subject: subjectName, status: 'ok', detail: `${free}; ${needed}` };
  });
}

export function checkPorts(probe: HostProbe, subject: CheckSubject | undefined): CheckResult[] {
  const ports = subject?.ports ?? [];
  if (ports.length === 0) return [];
  if (!probe.listeningPorts) {
    return [
      {
        id: 'ports',
        status: 'warn',
        detail: `could not read /proc/net/tcp to check ports ${ports.map((p) => p.port).join(', ')}`,
        hint: `Check with ss -ltn on the host that ${ports.map((p) => p.port).join(', ')} are free.`,
      },
    ];
  }
  const listening = probe.listeningPorts;
  return ports.map(({ port, service }): CheckResult => {
    if (!listening.has(port))
      return { id: 'ports', subject: service, status: 'ok', detail: `port ${port} (${service}) is free` };
    // A release of ours already serving there is stopped by install before the new one starts.
    if (probe.root.current) {
      return {
        id: 'ports',
        subject: service,
        status: 'warn',
        detail: `port ${port} (${service}) is in use, probably by the current release ${probe.root.current}, which install stops first`,
        hint: `If something else listens there (ss -ltnp 'sport = :${port}'), stop it or change the service's port in the recipe.`,
      };
    }
    return {
      id: 'ports',
      subject: service,
      status: 'fail',
      detail: `port ${port} (${service}) is already in use`,
      hint: `Find the listener with ss -ltnp 'sport = :${port}' on the host and stop it, or change the service's port in the recipe.`,
    };
  });
}

export function checkMemory(
  probe: HostProbe,
  subject: CheckSubject | undefined,
): { results: CheckResult[]; reports: Array<{ workload: string; report: CpuFitReport }> } {
  const results: CheckResult[] = [];
  const reports: Array<{ workload: string; report: CpuFitReport }> = [];
  for (const workload of subject?.workloads.filter((w) => w.device === 'cpu') ?? []) {
    const report = planCpuFit({
      model: workload.shape,
      weights: workload.weights ?? { bytes: 0, source: 'unknown' },
      contextSize: workload.contextSize ?? 4096,
      ...(workload.contexts !== undefined ? { contexts: workload.contexts } : {}),
      ...(probe.memory?.availableBytes !== undefined
        ? { memoryAvailableBytes: probe.memory.availableBytes }
        : {}),
      ...(probe.memory?.totalBytes !== undefined ? { memoryTotalBytes: probe.memory.totalBytes } : {}),
    });
    reports.push({ workload: workload.label, report });
    results.push({ id: 'memory', subject: workload.label, ...report.verdict });
  }
  return { results, reports };
}

export function checkContainerRuntime(probe: HostProbe, subject: CheckSubject | undefined): CheckResult {
  const { containers } = probe;
  const needed = subject?.needsContainers ?? false;
  const found = [containers.podman, containers.docker].filter((v): v is string => v !== undefined);
  if (subject && !needed) {
    return {
      id: 'container-runtime',
      status: 'ok',
      detail: `not needed: the ${subject.kind} runs on apertus's own runtime${found.length > 0 ? ` (host has ${found.join(', ')})` : ''}`,
    };
  }
  const status = needed ? 'fail' : 'warn';
  if (found.length === 0) {
    return {
      id: 'container-runtime',
      status,
      detail: 'neither podman nor docker is installed',
      hint: "Install podman (daemonless; uses CDI for GPUs) or docker from the distribution's packages on your internal mirror: vLLM runs as a container.",
    };
  }
  if (!containers.podman && containers.dockerError) {
    return {
      id: 'container-runtime',
      status,
      detail: `${containers.docker} is installed, but its daemon does not answer: ${containers.dockerError}`,
      hint: 'Start dockerd (systemctl start docker), or install podman, which needs no daemon.',
    };
  }
  return { id: 'container-runtime', status: 'ok', detail: found.join('; ') };
}

/**
 * GPU access from containers (runtime-facts 7): podman reads CDI specs; docker needs the
 * nvidia runtime registered (or CDI enabled). Only asked where there are GPUs and containers.
 */
export function checkContainerToolkit(
  probe: HostProbe,
  subject: CheckSubject | undefined,
): CheckResult | undefined {
  const { containers } = probe;
  const gpus = probe.gpu.state === 'ok' && probe.gpu.gpus.length > 0;
  if (!gpus || (subject && !subject.needsContainers)) return undefined;
  if (!containers.podman && !containers.docker) return undefined;
  const needed = subject?.needsContainers ?? false;
  const cdi = containers.cdiSpecs.length > 0 ? `CDI spec ${containers.cdiSpecs.join(', ')}` : undefined;
  const ctk = containers.nvidiaCtk ? `nvidia-ctk (${containers.nvidiaCtk})` : undefined;
  const generate = containers.nvidiaCtk
    ? 'sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml (again after every driver upgrade, unless toolkit >= 1.18 runs nvidia-cdi-refresh)'
    : 'install the NVIDIA Container Toolkit from your internal mirror, then sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml';
  if (containers.podman) {
    if (cdi)
      return {
        id: 'container-toolkit',
        status: 'ok',
        detail: `podman can reach the GPUs through ${cdi}${ctk ? `; ${ctk}` : ''}`,
      };
    return {
      id: 'container-toolkit',
      status: needed ? 'fail' : 'warn',
      detail: `no CDI spec declares nvidia.com/gpu in /etc/cdi or /var/run/cdi, so podman containers cannot see the GPUs${ctk ? `; ${ctk} is installed` : ''}`,
      hint: `${generate[0]?.toUpperCase()}${generate.slice(1)}.`,
    };
  }
  const runtimes = containers.dockerRuntimes ?? [];
  if (runtimes.includes('nvidia')) {
    return {
      id: 'container-toolkit',
      status: 'ok',
      detail: `docker has the nvidia runtime (runtimes: ${runtimes.join(', ')})`,
    };
  }
  if (cdi) {
    return {
      id: 'container-toolkit',
      status: 'warn',
      detail: `docker has no nvidia runtime; ${cdi} exists, which docker uses only with CDI enabled (version-dependent)`,
      hint: 'Register the runtime: sudo nvidia-ctk runtime configure --runtime=docker, then restart dockerd.',
    };
  }
  return {
    id: 'container-toolkit',
    status: needed ? 'fail' : 'warn',
    detail: `docker has no nvidia runtime${containers.dockerRuntimes ? ` (runtimes: ${runtimes.join(', ')})` : ''} and no CDI spec exists`,
    hint: containers.nvidiaCtk
      ? 'sudo nvidia-ctk runtime configure --runtime=docker, then restart dockerd.'
      : 'Install the NVIDIA Container Toolkit from your internal mirror, then sudo nvidia-ctk runtime configure --runtime=docker and restart dockerd.',
  };
}
