import { readFile } from 'node:fs/promises';
import { execa } from 'execa';
import { ApertusError } from '../errors.js';

/**
 * A network namespace that stands in for an air-gapped host: one veth pair on a
 * link-local /30 to this machine, `lo` up, and a default route into a sink: a second
 * veth pair, both ends inside, where packets go nowhere but are counted. Nothing inside
 * can reach any network but the link to us, and every attempt to shows in the sink's
 * tx_packets (install --count-egress). IPv6 is off on the sink, so it stays silent by
 * itself (no router or multicast solicitations) and IPv6 has no route out at all.
 */
export interface NetworkNamespace {
  name: string;
  /** Host-side veth interface, 169.254.X.1. */
  hostInterface: string;
  hostAddress: string;
  /** The namespace's address on the link, 169.254.X.2. */
  innerAddress: string;
  /** The interface every route out leads to, inside the namespace. */
  egressInterface: string;
}

const SINK = 'sink0';
const SINK_PEER = 'sink1';

/** Names made by this module: `apertus-<owner pid>-<n>`, so a sweep can tell stale ones. */
const NAME_PATTERN = /^apertus-(\d+)-(\d+)$/;

let created = 0;

/** The argv that runs `argv` inside namespace `name`. */
export function netnsCommand(name: string, argv: readonly string[]): string[] {
  return ['ip', 'netns', 'exec', name, ...argv];
}

export async function createNetworkNamespace(): Promise<NetworkNamespace> {
  const n = created++;
  const name = `apertus-${process.pid}-${n}`;
  // Linux caps interface names at 15 characters: 'apv' + pid and counter in base 36 fits.
  const hostInterface = `apv${process.pid.toString(36)}${n.toString(36)}`.slice(0, 15);
  const subnet = await pickFreeSubnet();
  const namespace = {
    name,
    hostInterface,
    hostAddress: `169.254.${subnet}.1`,
    innerAddress: `169.254.${subnet}.2`,
    egressInterface: SINK,
  };
  try {
    await ip(['netns', 'add', name]);
    await ip(['link', 'add', hostInterface, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
    await ip(['addr', 'add', `${namespace.hostAddress}/30`, 'dev', hostInterface]);
    await ip(['link', 'set', hostInterface, 'up']);
    await ip(['-n', name, 'addr', 'add', `${namespace.innerAddress}/30`, 'dev', 'eth0']);
    await ip(['-n', name, 'link', 'set', 'eth0', 'up']);
    await ip(['-n', name, 'link', 'set', 'lo', 'up']);
    await ip(['-n', name, 'link', 'add', SINK, 'type', 'veth', 'peer', 'name', SINK_PEER]);
    for (const sink of [SINK, SINK_PEER]) {
      await run(netnsCommand(name, ['sysctl', '-qw', `net.ipv6.conf.${sink}.disable_ipv6=1`]));
      await ip(['-n', name, 'link', 'set', sink, 'up']);
    }
    await ip(['-n', name, 'route', 'add', 'default', 'dev', SINK]);
  } catch (error) {
    await deleteNetworkNamespace(namespace);
    throw error;
  }
  return namespace;
}

/** Kill what still runs inside, then delete the namespace; its veth pair goes with it. */
export async function deleteNetworkNamespace(namespace: Pick<NetworkNamespace, 'name' | 'hostInterface'>) {
  await killProcessesIn(namespace.name);
  await execa('ip', ['link', 'del', namespace.hostInterface], { reject: false });
  await execa('ip', ['netns', 'del', namespace.name], { reject: false });
}

export async function processesIn(name: string): Promise<number[]> {
  const result = await execa('ip', ['netns', 'pids', name], { reject: false });
  if (result.failed) return [];
  return result.stdout
    .split('\n')
    .map((line) => Number(line.trim()))
    .filter((pid) => Number.isInteger(pid) && pid > 0);
}

/**
 * Delete namespaces that crashed runs of this module left behind: their owner process is
 * gone and `isKept` does not claim them (`--keep` leaves a host running on purpose).
 * Returns the names deleted.
 */
export async function sweepStaleNamespaces(isKept: (name: string) => Promise<boolean>): Promise<string[]> {
  const list = await execa('ip', ['netns', 'list'], { reject: false });
  if (list.failed) return [];
  const swept: string[] = [];
  for (const line of list.stdout.split('\n')) {
    const name = line.trim().split(/\s+/)[0] ?? '';
    const match = NAME_PATTERN.exec(name);
    if (!match) continue;
    const owner = Number(match[1]);
    if (owner === process.pid || isAlive(owner)) continue;
    if (await isKept(name)) continue;
    const hostInterface = `apv${owner.toString(36)}${Number(match[2]).toString(36)}`.slice(0, 15);
    await deleteNetworkNamespace({ name, hostInterface });
    swept.push(name);
  }
  return swept;
}

async function killProcessesIn(name: string): Promise<void> {
  const pids = await processesIn(name);
  for (const pid of pids) signalProcess(pid, 'SIGKILL');
  // Deleting a namespace while a process still holds it only unlinks the name: wait a
  // moment for the kills to land so the veth and the namespace really go away.
  for (let tries = 0; tries < 50 && pids.some(isAlive); tries++) await sleep(20);
}

/** The X of 169.254.X.0/30 not used on this machine yet (1-254; 0 and 255 are reserved). */
async function pickFreeSubnet(): Promise<number> {
  const used = new Set<number>();
  const addresses = await execa('ip', ['-4', '-o', 'addr', 'show'], { reject: false });
  for (const match of addresses.stdout.matchAll(/inet 169\.254\.(\d+)\./g)) used.add(Number(match[1]));
  const free = Array.from({ length: 254 }, (_, index) => index + 1).filter((x) => !used.has(x));
  // Random, so two processes creating hosts at the same moment rarely pick the same one.
  const pick = free[Math.floor(Math.random() * free.length)];
  if (pick === undefined) {
    throw new ApertusError('demo-host-no-subnet', 'All 254 link-local /30 subnets 169.254.X.0 are in use.', {
      kind: 'operation',
      hint: "Remove stale namespaces: ip netns list, then ip netns del NAME for the 'apertus-*' ones.",
    });
  }
  return pick;
}

async function ip(args: string[]): Promise<void> {
  await run(['ip', ...args]);
}

async function run([file = '', ...args]: string[]): Promise<void> {
  const result = await execa(file, args, { reject: false });
  if (result.failed) {
    throw new ApertusError(
      'demo-host-netns-failed',
      `${[file, ...args].join(' ')} failed: ${result.stderr.trim()}`,
      {
        kind: 'operation',
        hint: 'Network namespaces need root (CAP_NET_ADMIN and CAP_SYS_ADMIN); run as root or use the loopback sshd.',
      },
    );
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {}
}

/** The command line of a process, NUL-separated arguments split; empty when it is gone. */
export async function processArgv(pid: number): Promise<string[]> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter((arg) => arg !== '');
  } catch {
    return [];
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
