import { type ChildProcess, spawn } from 'node:child_process';
import { access, constants, mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { ApertusError } from '../errors.js';
import type { PublicKey } from '../host/known-hosts.js';

/** Where Debian and most distributions install it; sshd must be started by absolute path. */
const SSHD_CANDIDATES = ['/usr/sbin/sshd', '/sbin/sshd', '/usr/local/sbin/sshd'];

export async function findSshd(): Promise<string | undefined> {
  for (const candidate of SSHD_CANDIDATES) {
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

export async function findOnPath(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin'])) {
    if (dir !== '' && (await isExecutable(join(dir, name)))) return join(dir, name);
  }
  return undefined;
}

/** A fresh ed25519 key pair without passphrase; returns the public key. */
export async function generateKey(file: string, comment: string): Promise<PublicKey> {
  const result = await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], {
    reject: false,
  });
  if (result.failed) {
    throw new ApertusError(
      'demo-host-keygen-failed',
      `ssh-keygen could not create ${file}: ${result.stderr.trim()}`,
      {
        kind: 'operation',
        hint: 'Install openssh-client (ssh-keygen) and check that the work directory is writable.',
      },
    );
  }
  const [type, base64] = (await readFile(`${file}.pub`, 'utf8')).trim().split(/\s+/);
  if (!type || !base64) throw new Error(`ssh-keygen wrote an unreadable ${file}.pub`);
  return { type, base64 };
}

export interface SshdConfig {
  dir: string;
  listenAddress: string;
  port: number;
  hostKeyFile: string;
  authorizedKeysFile: string;
  /** Appended lines; sshd takes the first value of a keyword, so these cannot override ours. */
  extra?: string[];
}

/**
 * A config that shares nothing with the machine's own sshd: its host key, its authorized
 * keys, its pid file. StrictModes off because the keys live in a temp dir whose parents
 * sshd would otherwise reject; keys only, no passwords, no PAM.
 */
export function renderSshdConfig(config: SshdConfig): string {
  return `${[
    `ListenAddress ${config.listenAddress}:${config.port}`,
    `HostKey ${config.hostKeyFile}`,
    `PidFile ${join(config.dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${config.authorizedKeysFile}`,
    'StrictModes no',
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'UseDNS no',
    'AllowTcpForwarding yes',
    'X11Forwarding no',
    'PrintMotd no',
    // Installs and tests open many channels at once.
    'MaxSessions 64',
    'MaxStartups 64:30:128',
    'LogLevel VERBOSE',
    'Subsystem sftp internal-sftp',
    ...(config.extra ?? []),
  ].join('\n')}\n`;
}

export interface StartedSshd {
  process: ChildProcess;
  logFile: string;
}

/**
 * Start `argv` (sshd -D -e, maybe under `ip netns exec`) detached with its log in a file,
 * so it outlives us when the host is kept, and wait until it greets on `address:port`.
 */
export async function startSshd(
  argv: string[],
  address: string,
  port: number,
  logFile: string,
  signal?: AbortSignal,
): Promise<StartedSshd> {
  const log = await open(logFile, 'a');
  const [command, ...args] = argv;
  if (command === undefined) throw new Error('startSshd needs a command');
  let child: ChildProcess;
  try {
    child = spawn(command, args, { stdio: ['ignore', log.fd, log.fd], detached: true });
  } finally {
    await log.close();
  }
  child.unref();
  let exited: string | undefined;
  child.once('exit', (code, sig) => {
    exited = sig ? `was killed by ${sig}` : `exited with code ${code}`;
  });
  child.once('error', (error) => {
    exited = `could not start: ${error.message}`;
  });

  const deadline = Date.now() + 10_000;
  while (true) {
    if (signal?.aborted) {
      child.kill('SIGKILL');
      throw signal.reason;
    }
    if (exited !== undefined) break;
    if (await greets(address, port)) return { process: child, logFile };
    if (Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill('SIGKILL');
  const tail = (await readFile(logFile, 'utf8').catch(() => '')).trim().split('\n').slice(-10).join('\n');
  throw new ApertusError(
    'demo-host-sshd-failed',
    `sshd for the demo host ${exited ?? 'did not accept connections within 10 s'} (${address}:${port}).\n${tail}`,
    { kind: 'operation', hint: `Its full log is ${logFile}.` },
  );
}

/** True once something on address:port sends an SSH banner; we send nothing ourselves. */
function greets(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port });
    let seen = '';
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), 1_000);
    socket.on('data', (chunk: Buffer) => {
      seen += chunk.toString('latin1');
      if (seen.includes('SSH-')) finish(true);
    });
    socket.on('error', () => finish(false));
    socket.on('close', () => finish(seen.includes('SSH-')));
  });
}

export async function writePrivateFile(file: string, text: string): Promise<void> {
  await writeFile(file, text, { mode: 0o600 });
}

/** sshd refuses to start as root without its privilege separation directory. */
export async function ensurePrivsepDir(): Promise<void> {
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
}

async function isExecutable(file: string): Promise<boolean> {
  return access(file, constants.X_OK).then(
    () => true,
    () => false,
  );
}
