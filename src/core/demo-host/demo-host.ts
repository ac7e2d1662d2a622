import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { realpathSync, rmSync } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import { basename, join } from 'node:path';
import { execa } from 'execa';
import { ApertusError } from '../errors.js';
import { execResult } from '../host/exec-result.js';
import { appendKnownHost } from '../host/known-hosts.js';
import { createLocalTransport } from '../host/local-transport.js';
import { quoteArg, shellQuote } from '../host/shell-quote.js';
import { connectSsh } from '../host/ssh-transport.js';
import type { ExecResult, Transport } from '../host/transport.js';
import { noProgress, type RunOptions } from '../progress.js';
import {
  containersConfSetEnv,
  removeContainersIn,
  withCgroupsMounted,
  writeContainersConf,
} from './container-support.js';
import { isKeptNamespace, recordKeptHost } from './kept-hosts.js';
import {
  createNetworkNamespace,
  deleteNetworkNamespace,
  type NetworkNamespace,
  netnsCommand,
  signalProcess,
  sweepStaleNamespaces,
} from './network-namespace.js';
import {
  ensurePrivsepDir,
  findOnPath,
  findSshd,
  generateKey,
  renderSshdConfig,
  type StartedSshd,
  startSshd,
  writePrivateFile,
} from './sshd.js';

export type DemoHostMode = 'netns' | 'loopback-sshd' | 'local';

export interface CreateDemoHostOptions extends RunOptions {
  /** Parent of the host's files (keys, sshd config and log, the install root); created if missing. */
  workDir: string;
  /** Default 'auto': netns where possible, else loopback-sshd, else local. A named mode that cannot be made is an error. */
  mode?: DemoHostMode | 'auto';
  /** Extra sshd_config lines, e.g. `RekeyLimit 1M` to test re-keying. */
  sshdConfig?: string[];
}

/**
 * A local stand-in for an air-gapped host, for the demo and the tests. In 'netns' mode it
 * is a network namespace reachable only over its link-local veth, with its own sshd;
 * in 'loopback-sshd' an sshd on 127.0.0.1; in 'local' no SSH at all (use the local transport).
 * Its filesystem is this machine's: `root` is the directory to install into (--root).
 */
export interface DemoHost {
  mode: DemoHostMode;
  /** Which mode and why, in one line, for the user. */
  reason: string;
  /** USER@ADDR:PORT, when there is an sshd. */
  address?: string;
  identityFile?: string;
  /** Holds the host's key already, so the connection is verified, not trusted blindly. */
  knownHostsFile?: string;
  root: string;
  /** The network namespace, in 'netns' mode. */
  namespace?: string;
  /** In 'netns' mode: the sink interface every route out leads to (install --count-egress). */
  egressInterface?: string;
  sshdLogFile?: string;
  /**
   * In 'netns' mode, SSH sessions run podman containers as on a real host: the cgroup
   * hierarchies are mounted in sshd's mount namespace, and CONTAINERS_CONF points every
   * session at this file (runc and the ulimits this machine allows; container-support.ts).
   * Teardown removes the containers still running there. commandOnHost, spawnOnHost and
   * runOnHost do not get either: run containers through SSH.
   */
  containersConf?: string;
  /** argv that runs `argv` on the host's network (inside the namespace in 'netns' mode). */
  commandOnHost(argv: readonly string[]): string[];
  /** Start a long-running process on the host's network (a test server); teardown kills it. */
  spawnOnHost(argv: readonly string[], options?: { env?: NodeJS.ProcessEnv; cwd?: string }): ChildProcess;
  /** Run a short command on the host's network; resolves with its execa-shaped result, never rejects on exit code. */
  runOnHost(argv: readonly string[]): Promise<ExecResult>;
  /**
   * Leave the host running after this process exits (`--keep`); returns how to reach and
   * remove it. `alsoRemove`: a directory of the caller's that goes with the host (`demo --down`).
   */
  keptInstructions(options?: { alsoRemove?: string }): string[];
  /** Kill sshd and what was spawned, delete the namespace, remove the files; safe to call twice. */
  teardown(): Promise<void>;
}

export async function createDemoHost(options: CreateDemoHostOptions): Promise<DemoHost> {
  const { signal, onProgress = noProgress } = options;
  signal?.throwIfAborted();
  const wanted = options.mode ?? 'auto';
  onProgress({ step: 'demo-host', status: 'start', detail: 'Creating a local air-gapped test host' });
  await mkdir(options.workDir, { recursive: true });
  const dir = await mkdtemp(join(options.workDir, 'demo-host-'));
  const root = join(dir, 'root');
  await mkdir(root);

  const sshd = await findSshd();
  const keygen = await findOnPath('ssh-keygen');
  const ipTool = await findOnPath('ip');
  const uid = process.getuid?.() ?? -1;
  const why: string[] = [];
  const refuse = (mode: DemoHostMode, reason: string): never => {
    throw new ApertusError('demo-host-unavailable', `Cannot create a '${mode}' demo host: ${reason}.`, {
      kind: 'operation',
      hint: 'Use the default mode (auto), which falls back to what this machine allows, or fix what is missing.',
    });
  };

  try {
    if (wanted === 'auto' || wanted === 'netns') {
      let unavailable: string | undefined;
      if (uid !== 0) unavailable = `not running as root (uid ${uid}), which network namespaces need`;
      else if (!ipTool) unavailable = "iproute2's ip is not installed";
      else if (!sshd || !keygen) unavailable = 'OpenSSH sshd or ssh-keygen is not installed';
      if (unavailable === undefined) {
        try {
          const host = await createNetnsHost(
            dir,
            root,
            sshd as string,
            options.sshdConfig ?? [],
            signal,
            onProgress,
          );
          onProgress({ step: 'demo-host', status: 'ok', detail: `${host.mode}: ${host.reason}` });
          return host;
        } catch (error) {
          if (wanted === 'netns' || signal?.aborted) throw error;
          unavailable = (error as Error).message.split('\n')[0] ?? String(error);
        }
      }
      if (wanted === 'netns') refuse('netns', unavailable);
      why.push(`no network namespace: ${unavailable}`);
    }
    if (wanted === 'auto' || wanted === 'loopback-sshd') {
      let unavailable: string | undefined;
      if (!sshd || !keygen) unavailable = 'OpenSSH sshd or ssh-keygen is not installed';
      if (unavailable === undefined) {
        try {
          const host = await createLoopbackHost(
            dir,
            root,
            sshd as string,
            options.sshdConfig ?? [],
            why,
            signal,
            onProgress,
          );
          onProgress({ step: 'demo-host', status: 'ok', detail: `${host.mode}: ${host.reason}` });
          return host;
        } catch (error) {
          if (wanted === 'loopback-sshd' || signal?.aborted) throw error;
          unavailable = (error as Error).message.split('\n')[0] ?? String(error);
        }
      }
      if (wanted === 'loopback-sshd') refuse('loopback-sshd', unavailable);
      why.push(`no sshd: ${unavailable}`);
    }
    const reason = `the local transport into ${root}, no SSH (${why.join('; ') || 'asked for'})`;
    const host = makeHost({ mode: 'local', reason, dir, root, wrap: (argv) => [...argv] });
    onProgress({ step: 'demo-host', status: 'ok', detail: `local: ${reason}` });
    return host;
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    onProgress({ step: 'demo-host', status: 'fail', detail: (error as Error).message });
    throw error;
  }
}

/** A Transport to the demo host: SSH with its key and known_hosts, or local into its root. */
export function connectDemoHost(host: DemoHost, options: RunOptions = {}): Promise<Transport> {
  if (host.mode === 'local' || host.address === undefined) {
    return Promise.resolve(createLocalTransport({ cwd: host.root }));
  }
  return connectSsh({
    address: host.address,
    identityFile: host.identityFile,
    knownHostsFile: host.knownHostsFile,
    signal: options.signal,
    onProgress: options.onProgress,
  });
}

async function createNetnsHost(
  dir: string,
  root: string,
  sshdPath: string,
  sshdConfig: string[],
  signal: AbortSignal | undefined,
  onProgress: NonNullable<RunOptions['onProgress']>,
): Promise<DemoHost> {
  const swept = await sweepStaleNamespaces(isKeptNamespace);
  if (swept.length > 0) {
    onProgress({ step: 'demo-host', status: 'info', detail: `Removed stale namespaces ${swept.join(', ')}` });
  }
  const namespace = await createNetworkNamespace();
  let started: StartedSshd | undefined;
  try {
    const containersConf = await writeContainersConf(dir);
    const material = await prepareSsh(dir, namespace.innerAddress, 22, [
      ...sshdConfig,
      containersConfSetEnv(containersConf),
    ]);
    await ensurePrivsepDir();
    started = await startSshd(
      netnsCommand(namespace.name, withCgroupsMounted([sshdPath, '-D', '-e', '-f', material.configFile])),
      namespace.innerAddress,
      22,
      material.logFile,
      signal,
    );
    await appendKnownHost(material.knownHostsFile, namespace.innerAddress, 22, material.hostKey);
    const reason = `network namespace ${namespace.name}: sshd on ${namespace.innerAddress}:22 over a veth link, with cgroups and a containers.conf for podman; every route out ends in the packet-counting sink ${namespace.egressInterface} (running as root with ip and sshd)`;
    return makeHost({
      mode: 'netns',
      reason,
      dir,
      root,
      address: `root@${namespace.innerAddress}:22`,
      identityFile: material.identityFile,
      knownHostsFile: material.knownHostsFile,
      sshdLogFile: material.logFile,
      containersConf,
      namespace,
      sshd: started.process,
      sshdPath,
      wrap: (argv) => netnsCommand(namespace.name, argv),
    });
  } catch (error) {
    if (started?.process.pid) signalProcess(started.process.pid, 'SIGKILL');
    await deleteNetworkNamespace(namespace);
    throw error;
  }
}

async function createLoopbackHost(
  dir: string,
  root: string,
  sshdPath: string,
  sshdConfig: string[],
  why: string[],
  signal: AbortSignal | undefined,
  onProgress: NonNullable<RunOptions['onProgress']>,
): Promise<DemoHost> {
  const user = userInfo().username;
  if (process.getuid?.() === 0) await ensurePrivsepDir();
  let lastError: unknown;
  // The free port we find can be taken before sshd binds it: try a few.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freeLoopbackPort();
    const material = await prepareSsh(dir, '127.0.0.1', port, sshdConfig);
    let started: StartedSshd;
    try {
      started = await startSshd(
        [sshdPath, '-D', '-e', '-f', material.configFile],
        '127.0.0.1',
        port,
        material.logFile,
        signal,
      );
    } catch (error) {
      if (signal?.aborted) throw error;
      lastError = error;
      continue;
    }
    await appendKnownHost(material.knownHostsFile, '127.0.0.1', port, material.hostKey);
    const reason = `sshd on 127.0.0.1:${port}, not isolated from the network (${why.join('; ')})`;
    onProgress({ step: 'demo-host', status: 'info', detail: reason });
    return makeHost({
      mode: 'loopback-sshd',
      reason,
      dir,
      root,
      address: `${user}@127.0.0.1:${port}`,
      identityFile: material.identityFile,
      knownHostsFile: material.knownHostsFile,
      sshdLogFile: material.logFile,
      sshd: started.process,
      sshdPath,
      wrap: (argv) => [...argv],
    });
  }
  throw lastError;
}

interface SshMaterial {
  configFile: string;
  logFile: string;
  identityFile: string;
  knownHostsFile: string;
  hostKey: { type: string; base64: string };
}

/** Host key, client key, authorized_keys, known_hosts and sshd_config, all under `dir`. */
async function prepareSsh(
  dir: string,
  listenAddress: string,
  port: number,
  extra: string[],
): Promise<SshMaterial> {
  const hostKeyFile = join(dir, 'ssh_host_ed25519_key');
  const identityFile = join(dir, 'id_ed25519');
  const authorizedKeysFile = join(dir, 'authorized_keys');
  const knownHostsFile = join(dir, 'known_hosts');
  const configFile = join(dir, 'sshd_config');
  // A retry (loopback, port taken) reuses the keys made the first time.
  const exists = await access(hostKeyFile).then(
    () => true,
    () => false,
  );
  if (!exists) {
    await generateKey(hostKeyFile, 'apertus-demo-host');
    await generateKey(identityFile, 'apertus-demo-client');
    await writePrivateFile(authorizedKeysFile, await readFile(`${identityFile}.pub`, 'utf8'));
  }
  const [type = '', base64 = ''] = (await readFile(`${hostKeyFile}.pub`, 'utf8')).trim().split(/\s+/);
  await writeFile(knownHostsFile, '');
  await writeFile(
    configFile,
    renderSshdConfig({ dir, listenAddress, port, hostKeyFile, authorizedKeysFile, extra }),
  );
  return {
    configFile,
    logFile: join(dir, 'sshd.log'),
    identityFile,
    knownHostsFile,
    hostKey: { type, base64 },
  };
}

interface HostParts {
  mode: DemoHostMode;
  reason: string;
  dir: string;
  root: string;
  address?: string;
  identityFile?: string;
  knownHostsFile?: string;
  sshdLogFile?: string;
  containersConf?: string;
  namespace?: NetworkNamespace;
  sshd?: ChildProcess;
  /** The sshd program, recorded for a kept host (its pid alone could be reused). */
  sshdPath?: string;
  wrap: (argv: readonly string[]) => string[];
}

function makeHost(parts: HostParts): DemoHost {
  const spawned = new Set<ChildProcess>();
  let kept = false;
  let tornDown: Promise<void> | undefined;

  // A test run that ends without teardown (a failed beforeAll, an uncaught error) must not
  // leave sshd and the namespace behind; 'exit' handlers can only do synchronous work.
  const onExit = () => {
    if (kept || tornDown) return;
    for (const child of spawned) if (child.pid) signalProcess(child.pid, 'SIGKILL');
    if (parts.sshd?.pid) signalProcess(parts.sshd.pid, 'SIGKILL');
    if (parts.namespace) {
      try {
        const pids = execFileSync('ip', ['netns', 'pids', parts.namespace.name], { encoding: 'utf8' });
        for (const pid of pids
          .split('\n')
          .map(Number)
          .filter((p) => p > 0))
          signalProcess(pid, 'SIGKILL');
        execFileSync('ip', ['netns', 'del', parts.namespace.name], { stdio: 'ignore' });
      } catch {}
    }
    rmSync(parts.dir, { recursive: true, force: true });
  };
  process.on('exit', onExit);

  const teardown = async () => {
    process.removeListener('exit', onExit);
    for (const child of spawned) await stop(child);
    if (parts.namespace && parts.containersConf)
      await removeContainersIn(parts.namespace.name, parts.containersConf);
    if (parts.sshd) await stop(parts.sshd);
    if (parts.namespace) await deleteNetworkNamespace(parts.namespace);
    await rm(parts.dir, { recursive: true, force: true });
  };

  return {
    mode: parts.mode,
    reason: parts.reason,
    address: parts.address,
    identityFile: parts.identityFile,
    knownHostsFile: parts.knownHostsFile,
    root: parts.root,
    namespace: parts.namespace?.name,
    egressInterface: parts.namespace?.egressInterface,
    sshdLogFile: parts.sshdLogFile,
    containersConf: parts.containersConf,
    commandOnHost: parts.wrap,
    spawnOnHost(argv, options = {}) {
      const [command, ...args] = parts.wrap(argv);
      if (command === undefined) throw new Error('spawnOnHost needs a command');
      const child = spawn(command, args, {
        env: options.env,
        cwd: options.cwd,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      spawned.add(child);
      child.once('exit', () => spawned.delete(child));
      return child;
    },
    async runOnHost(argv) {
      const [command, ...args] = parts.wrap(argv);
      if (command === undefined) throw new Error('runOnHost needs a command');
      const result = await execa(command, args, { reject: false, stripFinalNewline: false, stdin: 'ignore' });
      return execResult(
        shellQuote(argv),
        result.exitCode ?? 255,
        String(result.stdout),
        String(result.stderr),
      );
    },
    keptInstructions(options = {}) {
      kept = true;
      process.removeListener('exit', onExit);
      // Synchronously: the process may exit right after, and the record must be there.
      const id = parts.namespace?.name ?? basename(parts.dir);
      let recorded = true;
      try {
        recordKeptHost({
          id,
          mode: parts.mode,
          dir: parts.dir,
          alsoRemove: options.alsoRemove ?? null,
          root: parts.root,
          address: parts.address ?? null,
          namespace: parts.namespace?.name ?? null,
          hostInterface: parts.namespace?.hostInterface ?? null,
          sshdPid: parts.sshd?.pid ?? null,
          sshdExe: parts.sshdPath ? realpathSync(parts.sshdPath) : null,
          containersConf: parts.containersConf ?? null,
          keptAt: new Date().toISOString(),
        });
      } catch {
        recorded = false;
      }
      // By hand, where `demo --down` cannot be run: the services first, then sshd and the namespace.
      const remove: string[] = [];
      const pidFiles = quoteArg(join(parts.root, 'run'));
      remove.push(`for f in ${pidFiles}/*.pid; do [ -f "$f" ] && kill "$(cat "$f")"; done`);
      if (parts.sshd?.pid) remove.push(`kill ${parts.sshd.pid}`);
      if (parts.namespace)
        remove.push(
          `ip netns pids ${parts.namespace.name} | xargs -r kill -9; ip netns del ${parts.namespace.name}`,
        );
      remove.push(`rm -rf ${quoteArg(parts.dir)}`);
      const lines: string[] = [];
      if (parts.address && parts.identityFile && parts.knownHostsFile) {
        const [, hostPart = ''] = parts.address.split('@');
        const port = hostPart.slice(hostPart.lastIndexOf(':') + 1);
        const userHost = parts.address.slice(0, parts.address.lastIndexOf(':'));
        lines.push(
          `Log in: ssh -i ${quoteArg(parts.identityFile)} -o UserKnownHostsFile=${quoteArg(parts.knownHostsFile)} -p ${port} ${userHost}`,
        );
      }
      lines.push(`Install root: ${parts.root}`);
      if (recorded) lines.push(`Remove it with its services: apertus demo --down ${id}`);
      lines.push(`${recorded ? 'Or by hand' : 'Remove it with its services'}: ${remove.join('; ')}`);
      return lines;
    },
    teardown() {
      tornDown ??= teardown();
      return tornDown;
    },
  };
}

/** SIGTERM, then SIGKILL if it lingers; resolves once it has exited. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  signalProcess(child.pid, 'SIGTERM');
  const timer = setTimeout(() => child.pid && signalProcess(child.pid, 'SIGKILL'), 2_000);
  await exited;
  clearTimeout(timer);
}

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}
