/**
 * Demo hosts kept with `apertus demo --keep`, recorded where every later apertus run on
 * this machine finds them: one JSON file per host in a directory of this user's (under
 * /run for root, so a reboot, which takes the namespaces, takes the records too). The
 * record, not the processes, says a host is kept: sshd rewrites its own command line, so
 * /proc/PID/cmdline cannot be matched to a host. `removeKeptHosts` (`apertus demo --down`)
 * stops a kept host's services, its containers and sshd, deletes its namespace and files.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { readdir, readFile, readlink, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { ApertusError } from '../errors.js';
import { createLocalTransport } from '../host/local-transport.js';
import { hostLayout } from '../target/layout.js';
import { stopCurrentRelease } from '../target/releases.js';
import { removeContainersIn } from './container-support.js';
import { deleteNetworkNamespace, isAlive, signalProcess } from './network-namespace.js';

/** What a kept host's record holds: enough to reach it and to take it down. Field names are a contract. */
export interface KeptHost {
  /** The record's own name: the namespace, else the host directory's name. */
  id: string;
  mode: 'netns' | 'loopback-sshd' | 'local';
  /** The host's directory (keys, sshd config and log, the install root). */
  dir: string;
  /** A directory of the run that kept it (the demo's bundle keys), removed with it. */
  alsoRemove: string | null;
  root: string;
  address: string | null;
  namespace: string | null;
  hostInterface: string | null;
  sshdPid: number | null;
  /** The sshd binary, to tell the kept sshd from a process that got its pid since. */
  sshdExe: string | null;
  containersConf: string | null;
  keptAt: string;
}

/** Where the records live: this user's, never shared with another. */
export function keptHostsDir(): string {
  const uid = process.getuid?.() ?? -1;
  return uid === 0 ? '/run/apertus-demo-hosts' : path.join(os.tmpdir(), `apertus-demo-hosts-${uid}`);
}

/** Writes the record synchronously: `--keep` runs right before the process exits. */
export function recordKeptHost(host: KeptHost): string {
  const dir = keptHostsDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, `${host.id}.json`);
  writeFileSync(file, `${JSON.stringify(host, null, 2)}\n`, { mode: 0o600 });
  return file;
}

export async function listKeptHosts(): Promise<KeptHost[]> {
  const dir = keptHostsDir();
  const names = await readdir(dir).catch(() => [] as string[]);
  const hosts: KeptHost[] = [];
  for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
    try {
      const host = JSON.parse(await readFile(path.join(dir, name), 'utf8')) as KeptHost;
      if (typeof host.id === 'string' && typeof host.dir === 'string' && `${host.id}.json` === name)
        hosts.push(host);
    } catch {
      // A record half written or altered names nothing apertus may remove.
    }
  }
  return hosts;
}

/**
 * Whether the namespace `name` belongs to a kept host: its record names it and the host's
 * directory is still there (removing it by hand, as the printed fallback says, releases it).
 */
export async function isKeptNamespace(name: string): Promise<boolean> {
  const hosts = await listKeptHosts();
  const host = hosts.find((h) => h.namespace === name);
  if (!host) return false;
  return readdir(host.dir).then(
    () => true,
    () => false,
  );
}

/** The kept sshd is still the process with that pid: its executable is the sshd recorded. */
async function isKeptSshd(host: KeptHost): Promise<boolean> {
  if (host.sshdPid === null || host.sshdExe === null || !isAlive(host.sshdPid)) return false;
  const exe = await readlink(`/proc/${host.sshdPid}/exe`).catch(() => null);
  return exe === host.sshdExe;
}

export interface RemovedHost {
  id: string;
  mode: KeptHost['mode'];
  address: string | null;
  /** Services of the release current on it that were stopped. */
  stopped: string[];
  /** Containers removed from its namespace. */
  containers: number;
  namespaceDeleted: boolean;
  sshdStopped: boolean;
}

/** Takes kept demo hosts down (all, or the one named `id`): services, containers, sshd, namespace, files, record. */
export async function removeKeptHosts(id?: string): Promise<RemovedHost[]> {
  const removed: RemovedHost[] = [];
  const hosts = await listKeptHosts();
  if (id !== undefined && !hosts.some((h) => h.id === id)) {
    throw new ApertusError(
      'demo-host-unknown',
      `No demo host kept on this machine is named ${JSON.stringify(id)}.`,
      {
        hint: `Kept hosts: ${hosts.map((h) => h.id).join(', ') || 'none'}. Run \`apertus demo --down\` to remove them all.`,
      },
    );
  }
  for (const host of hosts.filter((h) => id === undefined || h.id === id)) {
    // The services run as processes of this machine (in the namespace's network only): their
    // supervisors' pid files under the root stop them, as a stop over SSH would.
    const transport = createLocalTransport({ cwd: host.dir });
    const stopped = await stopCurrentRelease(transport, hostLayout(host.root))
      .catch(() => [] as string[])
      .finally(() => transport.close());
    let containers = 0;
    if (host.namespace && host.containersConf)
      containers = (await removeContainersIn(host.namespace, host.containersConf).catch(() => [])).length;
    const sshdStopped = await isKeptSshd(host);
    if (sshdStopped && host.sshdPid !== null) signalProcess(host.sshdPid, 'SIGTERM');
    let namespaceDeleted = false;
    if (host.namespace && host.hostInterface) {
      const listed = await execa('ip', ['netns', 'list'], { reject: false });
      if (listed.stdout.split('\n').some((line) => line.split(/\s+/)[0] === host.namespace)) {
        // Kills whatever still runs inside (a service started by hand) before the delete.
        await deleteNetworkNamespace({ name: host.namespace, hostInterface: host.hostInterface });
        namespaceDeleted = true;
      }
    }
    await rm(host.dir, { recursive: true, force: true });
    if (host.alsoRemove) await rm(host.alsoRemove, { recursive: true, force: true });
    await rm(path.join(keptHostsDir(), `${host.id}.json`), { force: true });
    removed.push({
      id: host.id,
      mode: host.mode,
      address: host.address,
      stopped,
      containers,
      namespaceDeleted,
      sshdStopped,
    });
  }
  return removed;
}
