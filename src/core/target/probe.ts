/**
 * Everything a host command learns about a host before it acts, in one round trip: a POSIX
 * sh script sent on stdin (`sh -s`) that runs read-only commands and prints a transcript
 * (src/core/target/transcript.ts), parsed here into plain facts. Nothing is written on
 * the host. Commands that can hang on a wedged driver or daemon run under `timeout`.
 * `apertus check` and install read the whole host; rollback, status and trust only the
 * install root (`system: false`). The install root's part is the same for all: the store,
 * state.json, the audit log's head, the reports, and every entry that could make the root
 * unsafe (root-safety.ts judges them).
 */
import path from 'node:path/posix';
import { type GpuInventory, readGpuInventory } from '../gpu/gpu-inventory.js';
import { NVIDIA_SMI_COMMANDS } from '../gpu/nvidia-smi.js';
import { quoteArg } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import { hostLayout } from './layout.js';
import { parseTranscript, type TranscriptSection, transcriptOutputs } from './transcript.js';

export interface ProbeOptions {
  /** The install root (absolute): its store is listed, its filesystem measured. */
  root: string;
  /** Further directories the install writes (container storage); each gets a `df`. */
  diskPaths?: readonly string[];
  /** The machine itself: OS, CPUs, memory, GPUs, container engines, ports. Default true. */
  system?: boolean;
  /** Each release's disk use and the store's size (status). Default false. */
  sizes?: boolean;
}

/** Tools install needs on every host (DESIGN.md section 3), then SHA-256 tools, fastest first. */
export const REQUIRED_TOOLS = [
  'sh',
  'tar',
  'mkdir',
  'ln',
  'mv',
  'df',
  'cat',
  'wc',
  'sed',
  'find',
  'head',
  'tee',
] as const;
export const HASH_TOOLS = ['openssl', 'sha256sum', 'shasum'] as const;
export type HashTool = (typeof HASH_TOOLS)[number];

/** Seconds a possibly hanging command (nvidia-smi, docker) may take. */
const COMMAND_TIMEOUT_S = 20;

/** Command lines as the probe runs them; the parser looks sections up by the same strings. */
export const PROBE_COMMANDS = {
  clock: 'date -u +%s.%N',
  arch: 'uname -m',
  kernel: 'uname -sr',
  user: 'id -un',
  uid: 'id -u',
  hostTools: `for t in ${[...REQUIRED_TOOLS, ...HASH_TOOLS].join(' ')}; do command -v "$t"; done; true`,
  systemd: 'test -d /run/systemd/system',
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
  rootSafety: (root: string) => `root_safety ${quoteArg(root)}`,
  state: (root: string) => `cat ${quoteArg(path.join(root, 'state.json'))}`,
  auditHead: (root: string) => `audit_head ${quoteArg(path.join(root, 'audit.log'))}`,
  reports: (root: string) => `ls ${quoteArg(path.join(root, 'reports'))}`,
  releases: (root: string) => `release_sizes ${quoteArg(path.join(root, 'releases'))}`,
  storeSize: (root: string) => `du -sk ${quoteArg(path.join(root, 'blobs', 'sha256'))}`,
  keys: (root: string) => `public_keys ${quoteArg(root)}`,
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
  const system = options.system ?? true;
  const lines = [
    `run ${q(c.clock)}`,
    `run ${q(c.user)}`,
    `run ${q(c.uid)}`,
    `run ${q(c.hostTools)}`,
    `run ${q(c.systemd)}`,
    `run ${q(c.rootStatus(options.root))}`,
    `run ${q(c.rootSafety(options.root))}`,
    `run ${q(c.store(options.root))}`,
    `run ${q(c.state(options.root))}`,
    `run ${q(c.auditHead(options.root))}`,
    `run ${q(c.reports(options.root))}`,
    `run ${q(c.keys(options.root))}`,
    ...diskPaths.map((dir) => `run ${q(c.df(dir))}`),
    ...(options.sizes ? [`run ${q(c.releases(options.root))}`, `run ${q(c.storeSize(options.root))}`] : []),
  ];
  if (system) {
    lines.push(
      `run ${q(c.arch)}`,
      `run ${q(c.kernel)}`,
      `run ${q(c.osRelease)}`,
      `run ${q(c.glibc)} || run ${q(c.ldd)}`,
      `run ${q(c.cpus)}`,
      `run ${q(c.memory)}`,
      `run ${q(c.tcp)}`,
      `run ${q(c.tcp6)}`,
      `timed ${q(n.query)}`,
      `if [ "$LAST_RC" != 127 ]; then
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
fi`,
      `run ${q(n.driverVersionFile)}`,
      `run ${q(c.tools)}`,
      `has podman && run ${q(c.podmanVersion)}`,
      `has docker && run ${q(c.dockerVersion)} && timed ${q(c.dockerRuntimes)}`,
      `has nvidia-ctk && run ${q(c.nvidiaCtkVersion)}`,
      `run ${q(c.cdiSpecs)}`,
    );
  }
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
${STORE_LISTING}
${rootSafetyFunction(options.root)}
audit_head() {
  [ -e "$1" ] || return 0
  printf 'lines=%s\\n' "$(wc -l < "$1" | tr -d ' ')"
  printf 'bytes=%s\\n' "$(wc -c < "$1" | tr -d ' ')"
  printf 'last=%s\\n' "$(tail -n 1 "$1")"
}
public_keys() {
  for f in "$1"/trust/*.pub "$1"/keys/host.pub; do
    [ -f "$f" ] && [ ! -L "$f" ] || continue
    printf '%s %s\\n' "\${f#"$1"/}" "$(sed -n 2p "$f")"
  done
  return 0
}
release_sizes() {
  [ -d "$1" ] || return 0
  for d in "$1"/*/*; do
    [ -d "$d" ] && [ ! -L "$d" ] || continue
    printf '%s %s\\n' "$(du -sk "$d" | cut -f1)" "\${d#"$1"/}"
  done
}
${lines.join('\n')}
exit 0
`;
}

/** Blobs with their sizes and partial uploads, from one `ls`: thousands of blobs cost one process. */
const STORE_LISTING = `store_listing() {
  [ -d "$1" ] || return 0
  ls -lnA "$1" | while read -r mode links owner group size rest; do
    name=\${rest##* }
    case $mode in -*) ;; *) continue ;; esac
    case $name in .incoming-*) echo "partial \${name#.incoming-} $size" ;; .*) ;; *) echo "blob $name $size" ;; esac
  done
}`;

/**
 * sh function `root_safety ROOT`: `named` and an `ls -ldn` line for every entry the layout
 * names that exists, `offender` and its `ls -ldn` line for every other link, and every
 * directory or file writable by group or others or owned by neither the login user nor
 * root. Release trees, image archives and service data are the services' own below
 * their top directory and are not walked.
 */
function rootSafetyFunction(root: string): string {
  const layout = hostLayout(root);
  const relative = (p: string) => p.slice(root.length + 1);
  const named = layout.expected
    .filter((e) => e.path !== root)
    .map((e) => `"$1"/${relative(e.path)}`)
    .join(' ');
  return `root_safety() {
  [ -e "$1" ] || [ -L "$1" ] || return 0
  u=$(id -u)
  printf 'named '; ls -ldn "$1"
  for p in ${named}; do
    [ -e "$p" ] || [ -L "$p" ] || continue
    printf 'named '; ls -ldn "$p"
  done
  find "$1" \\( -path "$1/releases/*/*/?*" -o -path "$1/images/*/?*" -o -path "$1/data/?*" \\) -prune -o \\
    \\( -type l ! -path "$1/current" -o \\( -type d -o -type f \\) \\( -perm -0002 -o -perm -0020 -o \\( ! -user "$u" ! -user 0 \\) \\) \\) \\
    -exec sh -c 'for f; do printf "offender "; ls -ldn "$f"; done' sh {} +
  return 0
}`;
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

/** One entry under the install root as `ls -ldn` showed it. */
export interface RootEntry {
  path: string;
  type: 'dir' | 'file' | 'link' | 'other';
  /** Permission bits as ls prints them, e.g. 'rwxr-xr-x'. */
  mode: string;
  uid: number;
  /** Where a link points. */
  target?: string;
  /** Listed by the find for links, writable-by-others and foreign owners, not as a layout path. */
  flagged: boolean;
}

export interface HostProbe {
  /** The host's clock when the probe started (seconds since the epoch). */
  clockSeconds?: number;
  arch?: string;
  kernel?: string;
  user?: string;
  uid?: number;
  /** Of REQUIRED_TOOLS and HASH_TOOLS, the ones the host has. */
  hostTools: Set<string>;
  /** systemd is PID 1 (/run/systemd/system exists). */
  systemd: boolean;
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
    /** Blobs in the store (hex digest -> bytes). */
    blobs: Map<string, number>;
    /** Partly uploaded blobs from an interrupted upload (hex digest -> bytes so far). */
    partial: Map<string, number>;
    /** The layout's entries that exist, and every suspicious one (root-safety.ts judges them). */
    entries: RootEntry[];
    /** state.json's text; undefined when there is none. */
    stateText?: string;
    /** audit.log: its line and byte count and last line; undefined when there is none. */
    auditHead?: { lines: number; bytes: number; last: string };
    /** File names under reports/. */
    reports: string[];
    /** The minisign public keys under trust/ (file name -> base64 key line). */
    trustedKeys: Map<string, string>;
    /** keys/host.pub's base64 key line, when the host has made its key. */
    hostPublicKey?: string;
    /** With `sizes`: each release directory (releases/NAME/VERSION) and its disk use. */
    releases?: Array<{ release: string; diskBytes: number }>;
    /** With `sizes`: the blob store's disk use. */
    storeBytes?: number;
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
    hostTools: new Set(),
    systemd: get(c.systemd)?.exitCode === 0,
    root: {
      path: options.root,
      exists: false,
      writable: false,
      current: null,
      blobs: new Map(),
      partial: new Map(),
      entries: [],
      reports: [],
      trustedKeys: new Map(),
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
  const uid = Number(ok(c.uid));
  if (Number.isInteger(uid) && uid >= 0) probe.uid = uid;
  for (const line of (get(c.hostTools)?.output ?? '').split('\n')) {
    const name = path.basename(line.trim());
    if (name) probe.hostTools.add(name);
  }

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
    const bytes = Number(size);
    if (!hex || !/^[0-9a-f]{64}$/.test(hex) || !Number.isSafeInteger(bytes)) continue;
    if (kind === 'blob') probe.root.blobs.set(hex, bytes);
    if (kind === 'partial') probe.root.partial.set(hex, bytes);
  }
  probe.root.entries = parseRootEntries(get(c.rootSafety(options.root))?.output ?? '', options.root);
  const state = get(c.state(options.root));
  if (state?.exitCode === 0) probe.root.stateText = state.output;
  const audit = get(c.auditHead(options.root))?.output ?? '';
  const auditValue = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(audit)?.[1];
  if (auditValue('bytes') !== undefined) {
    probe.root.auditHead = {
      lines: Number(auditValue('lines') ?? 0),
      bytes: Number(auditValue('bytes')),
      last: auditValue('last') ?? '',
    };
  }
  const reports = get(c.reports(options.root));
  if (reports?.exitCode === 0) probe.root.reports = reports.output.split('\n').filter((l) => l.trim() !== '');
  for (const line of (get(c.keys(options.root))?.output ?? '').split('\n')) {
    const [file, key] = line.trim().split(' ');
    if (!file || !key) continue;
    if (file === 'keys/host.pub') probe.root.hostPublicKey = key;
    else if (/^trust\/[^/]+\.pub$/.test(file)) probe.root.trustedKeys.set(file.slice('trust/'.length), key);
  }
  const releases = get(c.releases(options.root));
  if (releases) {
    probe.root.releases = releases.output.split('\n').flatMap((line) => {
      const match = /^(\d+) (releases\/)?(\S+\/\S+)$/.exec(line.trim());
      return match ? [{ release: `releases/${match[3]}`, diskBytes: Number(match[1]) * 1024 }] : [];
    });
  }
  const storeSize = get(c.storeSize(options.root));
  if (storeSize?.exitCode === 0) probe.root.storeBytes = Number(storeSize.output.split(/\s/)[0]) * 1024;

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

const LS_LINE = /^([-dlcbps])([-rwxsStT]{9})[.+@]?\s+\d+\s+(\d+)\s+\d+\s+/;

/** `named`/`offender` lines of ls -ldn output under `root`. */
export function parseRootEntries(output: string, root: string): RootEntry[] {
  const entries = new Map<string, RootEntry>();
  for (const line of output.split('\n')) {
    const flagged = line.startsWith('offender ');
    if (!flagged && !line.startsWith('named ')) continue;
    const listing = line.slice(line.indexOf(' ') + 1);
    const fields = LS_LINE.exec(listing);
    const at = listing.indexOf(` ${root}`);
    if (!fields || at === -1) continue;
    const type =
      fields[1] === 'd' ? 'dir' : fields[1] === '-' ? 'file' : fields[1] === 'l' ? 'link' : 'other';
    let name = listing.slice(at + 1);
    let target: string | undefined;
    if (type === 'link') {
      const arrow = name.indexOf(' -> ');
      if (arrow !== -1) [name, target] = [name.slice(0, arrow), name.slice(arrow + 4)];
    }
    const known = entries.get(name);
    entries.set(name, {
      path: name,
      type,
      mode: fields[2] as string,
      uid: Number(fields[3]),
      ...(target === undefined ? {} : { target }),
      flagged: flagged || (known?.flagged ?? false),
    });
  }
  return [...entries.values()];
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
