/**
 * What makes the demo host run podman containers over SSH like a real host does, without
 * touching this machine's own container configuration (/etc/containers stays as it is):
 *
 * - `ip netns exec` gives the processes it starts a fresh /sys in a mount namespace of
 *   their own, without the cgroup hierarchies under /sys/fs/cgroup, so runc refuses to
 *   create containers there. sshd is started through `sh -c` that mounts this machine's
 *   hierarchies again inside that mount namespace first; every SSH session inherits them.
 * - podman on this machine needs runc and ulimits it may set (DESIGN.md section 7). A
 *   containers.conf in the host's directory says so, and sshd_config's `SetEnv
 *   CONTAINERS_CONF=...` hands it to every session: podman reads only that file then.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { quoteArg } from '../host/shell-quote.js';
import { processArgv, processesIn } from './network-namespace.js';

/** The file name of the host's containers.conf, in the host's directory. */
export const CONTAINERS_CONF_FILE = 'containers.conf';

/**
 * Mounts the cgroup hierarchies of PID 1 (this machine's) at /sys/fs/cgroup, in the calling
 * process's mount namespace only; a no-op where /sys/fs/cgroup already has them. cgroup v1
 * controllers each at their own directory (plus the named systemd one and a unified v2 tree
 * where PID 1 has both), or the one cgroup2 tree on a v2-only machine.
 */
export const MOUNT_CGROUPS_SCRIPT = `if [ -z "$(ls /sys/fs/cgroup 2>/dev/null)" ]; then
  mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup
  if grep -q ' cgroup2 ' /proc/1/mounts && ! grep -q ' cgroup ' /proc/1/mounts; then
    mount -t cgroup2 cgroup2 /sys/fs/cgroup
  else
    for c in $(awk '$3 == "cgroup" { print $4 }' /proc/1/mounts | tr ',' '\\n' | grep -vE '^(rw|ro|relatime|nosuid|nodev|noexec)$' | grep -v = | sort -u); do
      mkdir -p "/sys/fs/cgroup/$c" && mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
    done
    if grep -q 'name=systemd' /proc/1/mounts; then
      mkdir -p /sys/fs/cgroup/systemd && mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
    fi
    if grep -q ' cgroup2 ' /proc/1/mounts; then
      mkdir -p /sys/fs/cgroup/unified && mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
    fi
  fi
fi
`;

/** What podman on this machine needs, for every container the host's sessions start. */
export function renderContainersConf(): string {
  return [
    '# Written by apertus for its demo host: read through CONTAINERS_CONF in SSH sessions only.',
    '[containers]',
    'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
    '',
    '[engine]',
    'runtime = "runc"',
    'cgroup_manager = "cgroupfs"',
    '',
  ].join('\n');
}

/** Writes the host's containers.conf under `dir`; returns its path. */
export async function writeContainersConf(dir: string): Promise<string> {
  const file = join(dir, CONTAINERS_CONF_FILE);
  await writeFile(file, renderContainersConf());
  return file;
}

/** The sshd_config line that gives every session the host's containers.conf. */
export function containersConfSetEnv(file: string): string {
  return `SetEnv CONTAINERS_CONF=${file}`;
}

/**
 * The argv to run inside `ip netns exec`: mount the cgroups in the namespace's own mount
 * namespace, then become `argv` (sshd), which keeps the pid the caller waits on.
 */
export function withCgroupsMounted(argv: readonly string[]): string[] {
  return ['sh', '-c', `${MOUNT_CGROUPS_SCRIPT}exec ${argv.map(quoteArg).join(' ')}`];
}

/**
 * Removes the containers whose monitor (conmon) runs in namespace `name`: what the host's
 * sessions started and left running. The container's own processes live in namespaces of
 * their own, so killing what `ip netns pids` lists would orphan them. Returns their ids.
 */
export async function removeContainersIn(name: string, containersConf: string): Promise<string[]> {
  const ids: string[] = [];
  let monitor: number | undefined;
  for (const pid of await processesIn(name)) {
    const comm = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
    if (comm !== 'conmon') continue;
    const argv = await processArgv(pid);
    const id = argv[argv.indexOf('-c') + 1];
    if (argv.includes('-c') && id && /^[0-9a-f]{64}$/.test(id)) {
      ids.push(id);
      monitor ??= pid;
    }
  }
  if (monitor === undefined) return ids;
  // Inside the sessions' mount and network namespaces, where podman mounted each container's
  // network namespace under /run/netns: from outside it could not unmount and remove them.
  await execa(
    'nsenter',
    ['--target', String(monitor), '--mount', '--net', 'podman', 'rm', '--force', '--time', '0', ...ids],
    { reject: false, stdin: 'ignore', env: { CONTAINERS_CONF: containersConf } },
  );
  return ids;
}
