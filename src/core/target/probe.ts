/**
 * Everything `apertus check` learns about a host, in one round trip: a POSIX sh script
 * sent on stdin (`sh -s`) that runs read-only commands and prints a transcript
 * (src/core/target/transcript.ts), parsed here into plain facts. Nothing is written on
 * the host. Commands that can hang on a wedged driver or daemon run under `timeout`.
 */
import path from 'node:path/posix';
import { type GpuInventory, readGpuInventory } from '../gpu/gpu-inventory.js';
import { NVIDIA_SMI_COMMANDS } from '../gpu/nvidia-smi.js';
import { quoteArg } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import { parseTranscript, type TranscriptSection, transcriptOutputs } from './transcript.js';

export interface ProbeOptions {
  /** The install root (absolute): its store is listed, its filesystem measured. */
  root: string;
  /** Further directories the install writes (container storage); each gets a `df`. */
  diskPaths?: readonly string[];
}

/** Seconds a possibly hanging command (nvidia-smi, docker) may take. */
const COMMAND_TIMEOUT_S = 20;

/** Command lines as the probe runs them; the parser looks sections up by the same strings. */
export const PROBE_COMMANDS = {
  clock: 'date -u +%s.%N',
  arch: 'uname -m',
  kernel: 'uname -sr',
  user: 'id -un',
  osRelease: 'cat /etc/os-release',
  glibc: 'getconf GNU_LIBC_VERSION',
  ldd: 'ldd --version',
  cpus: 'nproc',
  memory: "grep -E '^(MemTotal|MemAvailable):' /proc/meminfo",
  // One name per `command -v`: dash stops at the first name it cannot find.
  tools:
    'for t in podman docker nvidia-ctk nvidia-container-cli nvidia-container-runtime; do command -v "$t"; done; true',
  podmanVersion: 'podman --version',
  dockerVersion: 'docker --version',
  dockerRuntimes: "docker info --format '{{json .Runtimes}}'",
  nvidiaCtkVersion: 'nvidia-ctk --version',
  cdiSpecs: 'grep -ls nvidia.com/gpu /etc/cdi/*.yaml /etc/cdi/*.json /var/run/cdi/*.yaml /var/run/cdi/*.json',
  tcp: 'cat /proc/net/tcp',
  tcp6: 'cat /proc/net/tcp6',
  rootStatus: (root: string) => `root_status ${quoteArg(root)}`,
  store: (root: string) => `store_listing ${quoteArg(path.join(root, 'blobs', 'sha256'))}`,
  df: (dir: string) => `df -Pk "$(existing_dir ${quoteArg(dir)})"`,
} as const;

/**
 * The script. `run` prints one transcript section; `timed` does the same under `timeout`
 * where the host has it. LAST_OUT/LAST_RC let later steps depend on earlier answers
 * without a second round trip.
 */
export function probeScript(options: ProbeOptions): string {
  const c = PROBE_COMMANDS;
  const q = (command: string) => quoteArg(command);
  const diskPaths = [options.root, ...(options.diskPaths ?? [])];
  const n = NVIDIA_SMI_COMMANDS;
  return `LC_ALL=C; export LC_ALL
TO=""; command -v timeout >/dev/null 2>&1 && TO="timeout ${COMMAND_TIMEOUT_S}"
section() { printf '=== $ %s\\n' "$1"; [ -n "$LAST_OUT" ] && printf '%s\\n' "$LAST_OUT"; printf '# exit %s\\n' "$LAST_RC"; }
run() { LAST_OUT=$(eval "$1" 2>&1); LAST_RC=$?; section "$1"; return $LAST_RC; }
timed() { LAST_OUT=$(eval "$TO $1" 2>&1); LAST_RC=$?; section "$1"; return $LAST_RC; }
has() { command -v "$1" >/dev/null 2>&1; }
existing_dir() { d=$1; while [ ! -e "$d" ] && [ "$d" != / ]; do d=$(dirname "$d"); done; printf '%s\\n' "$d"; }
root_status() {
  d=$(existing_dir "$1"); echo "existing=$d"
  [ -d "$1" ] && echo "exists=1"
  [ -w "$d" ] && echo "writable=1"
  [ -L "$1/current" ] && echo "current=$(readlink "$1/current")"
  return 0
}
store_listing() {
  [ -d "$1" ] || return 0
  for f in "$1"/* "$1"/.incoming-*; do
    [ -f "$f" ] || continue
    b=\${f##*/}
    case $b in .incoming-*) echo "partial \${b#.incoming-} $(wc -c < "$f")";; *) echo "blob $b";; esac
  done
}
run ${q(c.clock)}
run ${q(c.arch)}
run ${q(c.kernel)}
run ${q(c.user)}
run ${q(c.osRelease)}
run ${q(c.glibc)} || run ${q(c.ldd)}
run ${q(c.cpus)}
run ${q(c.memory)}
run ${q(c.rootStatus(options.root))}
run ${q(c.store(options.root))}
${diskPaths.map((dir) => `run ${q(c.df(dir))}`).join('\n')}
run ${q(c.tcp)}
run ${q(c.tcp6)}
timed ${q(n.query)}
if [ "$LAST_RC" != 127 ]; then
  QUERY_RC=$LAST_RC; QUERY_OUT=$LAST_OUT
  if [ "$QUERY_RC" != 0 ]; then
    case $QUERY_OUT in *compute_cap*) timed ${q(n.queryWithoutComputeCap)};; esac
  fi
  timed ${q(n.list)}
  timed ${q(n.version)}
  # The XML only when the query fell short: it failed, printed a field as [N/A], or MIG is on.
  case "$QUERY_RC $QUERY_OUT" in
    0*\\[*|0*Enabled*) timed ${q(n.xml)};;
    0*) ;;
    *) timed ${q(n.xml)};;
  esac
fi
run ${q(n.driverVersionFile)}
run ${q(c.tools)}
has podman && run ${q(c.podmanVersion)}
has docker && run ${q(c.dockerVersion)} && timed ${q(c.dockerRuntimes)}
has nvidia-ctk && run ${q(c.nvidiaCtkVersion)}
run ${q(c.cdiSpecs)}
exit 0
`;
}

export interface DiskFacts {
  /** The directory the install writes. */
  path: string;
  /** The nearest existing ancestor, which df measured. */
  measured?: string;
  mount?: string;
  filesystem?: string;
  availableBytes?: number;
  error?: string;
}

export interface ContainerFacts {
  podman?: string;
  docker?: string;
  /** Names of docker's configured runtimes ('nvidia', 'runc'), when docker answered. */
  dockerRuntimes?: string[];
  dockerError?: string;
  nvidiaCtk?: string;
  nvidiaContainerCli: boolean;
  nvidiaContainerRuntime: boolean;
  /** CDI spec files that declare nvidia.com/gpu devices. */
  cdiSpecs: string[];
}

export interface HostProbe {
  /** The host's clock when the probe started (seconds since the epoch). */
  clockSeconds?: number;
  arch?: string;
  kernel?: string;
  user?: string;
  os?: { id?: string; versionId?: string; prettyName?: string };
  libc?: { family: 'glibc' | 'musl'; version?: string };
  cpus?: number;
  memory?: { totalBytes?: number; availableBytes?: number };
  root: {
    path: string;
    exists: boolean;
    /** The directory whose permissions decide whether the install can create the root. */
    existingDir?: string;
    writable: boolean;
    current: string | null;
    blobs: Set<string>;
    partial: Map<string, number>;
  };
  disks: DiskFacts[];
  /** TCP ports in LISTEN state (IPv4 and IPv6); undefined when /proc/net/tcp was unreadable. */
  listeningPorts?: Set<number>;
  gpu: GpuInventory;
  containers: ContainerFacts;
}

export function parseOsRelease(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!match?.[1]) continue;
    let value = match[2] ?? '';
    if (/^".*"$|^'.*'$/.test(value)) value = value.slice(1, -1).replace(/\\(["\\$`])/g, '$1');
    fields[match[1]] = value;
  }
  return fields;
}

/** Listening ports from /proc/net/tcp or tcp6: `sl local_address rem_address st ...`, st 0A = LISTEN. */
export function parseProcNetTcp(text: string): number[] {
  const ports: number[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    const local = fields[1];
    if (!/^\d+:$/.test(fields[0] ?? '') || !local || fields[3] !== '0A') continue;
    const port = Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16);
    if (Number.isFinite(port)) ports.push(port);
  }
  return ports;
}

/** `df -Pk` output: the second line's available 1K-blocks and mount point. */
export function parseDf(
  text: string,
): { filesystem: string; availableBytes: number; mount: string } | undefined {
  const line = text.split('\n').find((l, i) => i > 0 && l.trim() !== '');
  if (!line) return undefined;
  const fields = line.trim().split(/\s+/);
  const available = Number(fields[3]);
  if (fields.length < 6 || !Number.isFinite(available)) return undefined;
  return { filesystem: fields[0] ?? '', availableBytes: available * 1024, mount: fields.slice(5).join(' ') };
}

export function parseProbe(sections: TranscriptSection[], options: ProbeOptions): HostProbe {
  const lookup = transcriptOutputs(sections);
  const get = (command: string) => lookup(command);
  const ok = (command: string) => {
    const s = get(command);
    return s && s.exitCode === 0 ? s.output.trim() : undefined;
  };
  const c = PROBE_COMMANDS;
  const probe: HostProbe = {
    root: {
      path: options.root,
      exists: false,
      writable: false,
      current: null,
      blobs: new Set(),
      partial: new Map(),
    },
    disks: [],
    gpu: readGpuInventory(lookup),
    containers: { nvidiaContainerCli: false, nvidiaContainerRuntime: false, cdiSpecs: [] },
  };

  const clock = ok(c.clock);
  const seconds = clock === undefined ? Number.NaN : Number(/^\d+(\.\d+)?/.exec(clock)?.[0]);
  if (Number.isFinite(seconds)) probe.clockSeconds = seconds;
  const arch = ok(c.arch);
  if (arch) probe.arch = arch;
  const kernel = ok(c.kernel);
  if (kernel) probe.kernel = kernel;
  const user = ok(c.user);
  if (user) probe.user = user;

  const osRelease = ok(c.osRelease);
  if (osRelease !== undefined) {
    const fields = parseOsRelease(osRelease);
    probe.os = {
      ...(fields.ID ? { id: fields.ID } : {}),
      ...(fields.VERSION_ID ? { versionId: fields.VERSION_ID } : {}),
      ...(fields.PRETTY_NAME ? { prettyName: fields.PRETTY_NAME } : {}),
    };
  }

  const glibc = ok(c.glibc);
  const ldd = get(c.ldd)?.output ?? '';
  if (glibc && /^glibc\s+\S+/i.test(glibc))
    probe.libc = { family: 'glibc', version: glibc.split(/\s+/)[1] as string };
  else if (/musl/i.test(ldd)) {
    const version = /Version\s+(\S+)/i.exec(ldd)?.[1];
    probe.libc = { family: 'musl', ...(version ? { version } : {}) };
  } else if (/GLIBC|GNU libc/i.test(ldd)) {
    const version = /(\d+\.\d+)\s*$/m.exec(ldd.split('\n')[0] ?? '')?.[1];
    probe.libc = { family: 'glibc', ...(version ? { version } : {}) };
  }

  const cpus = Number(ok(c.cpus));
  if (Number.isInteger(cpus) && cpus > 0) probe.cpus = cpus;
  const meminfo = ok(c.memory);
  if (meminfo) {
    const kb = (key: string) => {
      const value = new RegExp(`^${key}:\\s+(\\d+)\\s*kB`, 'm').exec(meminfo)?.[1];
      return value === undefined ? undefined : Number(value) * 1024;
    };
    const total = kb('MemTotal');
    const available = kb('MemAvailable');
    probe.memory = {
      ...(total !== undefined ? { totalBytes: total } : {}),
      ...(available !== undefined ? { availableBytes: available } : {}),
    };
  }

  const status = get(c.rootStatus(options.root))?.output ?? '';
  const statusValue = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(status)?.[1];
  probe.root.exists = statusValue('exists') === '1';
  probe.root.writable = statusValue('writable') === '1';
  const existing = statusValue('existing');
  if (existing) probe.root.existingDir = existing;
  probe.root.current = statusValue('current') ?? null;
  for (const line of (get(c.store(options.root))?.output ?? '').split('\n')) {
    const [kind, hex, size] = line.split(' ');
    if (!hex || !/^[0-9a-f]{64}$/.test(hex)) continue;
    if (kind === 'blob') probe.root.blobs.add(hex);
    if (kind === 'partial' && size !== undefined) probe.root.partial.set(hex, Number(size));
  }

  for (const dir of [options.root, ...(options.diskPaths ?? [])]) {
    const section = get(c.df(dir));
    const disk: DiskFacts = { path: dir };
    const parsed = section?.exitCode === 0 ? parseDf(section.output) : undefined;
    if (parsed) Object.assign(disk, parsed);
    else
      disk.error = section
        ? section.output.split('\n')[0] || `df exited ${section.exitCode}`
        : 'not measured';
    if (dir === options.root && probe.root.existingDir) disk.measured = probe.root.existingDir;
    probe.disks.push(disk);
  }

  const tcp = get(c.tcp);
  if (tcp?.exitCode === 0) {
    const ports = new Set(parseProcNetTcp(tcp.output));
    const tcp6 = get(c.tcp6);
    if (tcp6?.exitCode === 0) for (const port of parseProcNetTcp(tcp6.output)) ports.add(port);
    probe.listeningPorts = ports;
  }

  const tools = new Set(
    (get(c.tools)?.output ?? '')
      .split('\n')
      .map((l) => path.basename(l.trim()))
      .filter(Boolean),
  );
  const containers = probe.containers;
  const podman = ok(c.podmanVersion);
  if (tools.has('podman')) containers.podman = podman ?? 'installed';
  const docker = ok(c.dockerVersion);
  if (tools.has('docker')) containers.docker = docker ?? 'installed';
  const runtimes = get(c.dockerRuntimes);
  if (runtimes?.exitCode === 0) {
    try {
      containers.dockerRuntimes = Object.keys(JSON.parse(runtimes.output) as Record<string, unknown>).sort();
    } catch {
      containers.dockerError = `docker info printed unreadable runtimes: ${runtimes.output.slice(0, 200)}`;
    }
  } else if (runtimes) {
    // docker prints "null" for the runtimes before the reason it could not ask the daemon.
    containers.dockerError =
      runtimes.output
        .split('\n')
        .filter((l) => l.trim() !== '' && l.trim() !== 'null')
        .at(-1) ?? `exit ${runtimes.exitCode}`;
  }
  const ctk = ok(c.nvidiaCtkVersion);
  if (tools.has('nvidia-ctk')) containers.nvidiaCtk = ctk?.split('\n')[0] ?? 'installed';
  containers.nvidiaContainerCli = tools.has('nvidia-container-cli');
  containers.nvidiaContainerRuntime = tools.has('nvidia-container-runtime');
  containers.cdiSpecs = (get(c.cdiSpecs)?.output ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('/'));
  return probe;
}

export interface ProbeRun {
  probe: HostProbe;
  sections: TranscriptSection[];
  /** The operator's clock just before and just after the round trip (ms since the epoch). */
  sentAtMs: number;
  receivedAtMs: number;
}

/** Run the probe on the host; one exec. */
export async function runProbe(
  transport: Transport,
  options: ProbeOptions,
  run: { signal?: AbortSignal; now?: () => number } = {},
): Promise<ProbeRun> {
  const now = run.now ?? Date.now;
  const sentAtMs = now();
  const result = await transport.exec('sh -s', {
    stdin: probeScript(options),
    reject: false,
    ...(run.signal ? { signal: run.signal } : {}),
  });
  const receivedAtMs = now();
  const sections = parseTranscript(result.stdout);
  return { probe: parseProbe(sections, options), sections, sentAtMs, receivedAtMs };
}
