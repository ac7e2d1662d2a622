import { access, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Duplex, Readable } from 'node:stream';
import ssh2, { type Algorithms, type ClientChannel, type ConnectConfig } from 'ssh2';
import { ApertusError } from '../errors.js';
import { noProgress, type RunOptions } from '../progress.js';
import { commandFailedError, execResult } from './exec-result.js';
import { formatHostAddress, type HostAddress, parseHostAddress } from './host-address.js';
import {
  appendKnownHost,
  checkHostKey,
  defaultKnownHostsFile,
  fingerprintSha256,
  type KnownHostsEntry,
  knownHostsName,
  knownKeyTypes,
  type PublicKey,
  publicKeyFromBlob,
  readKnownHosts,
} from './known-hosts.js';
import { quoteArg } from './shell-quote.js';

// ssh2 is CommonJS: Node's ESM loader only finds its exports through the default import.
const { Client, utils } = ssh2;

import type { ExecOptions, ExecResult, Transport, UploadOptions } from './transport.js';

export interface ConnectSshOptions extends RunOptions {
  /** `USER@ADDR[:PORT]` or an already parsed address. */
  address: string | HostAddress;
  /**
   * OpenSSH private key (ed25519, ecdsa, rsa). Without it: the ssh-agent at SSH_AUTH_SOCK,
   * else the first of ~/.ssh/id_ed25519, id_ecdsa, id_rsa that exists, as `ssh` does.
   */
  identityFile?: string;
  /** For an encrypted identityFile. */
  identityPassphrase?: string;
  /** Default ~/.ssh/known_hosts. */
  knownHostsFile?: string;
  /** Trust and record a host key known_hosts does not know yet (never a changed one). */
  acceptNewHostKey?: boolean;
  /** How long the host has to answer, verify and accept us. Default 20 s. */
  connectTimeoutMs?: number;
}

/** A Transport over SSH, with what was verified about the host, for audit records. */
export interface SshTransport extends Transport {
  readonly address: HostAddress;
  /** The verified host key, `ssh-ed25519 SHA256:...`. */
  readonly hostKey: string;
  /** Negotiated client-to-server cipher, e.g. aes128-gcm@openssh.com. */
  readonly cipher: string;
}

// GCM is the fastest cipher both OpenSSH and Node's OpenSSL offer on AES-NI hardware: it
// decides upload throughput, since the host's sshd decrypts every byte of the bundle.
const PREFERRED_CIPHERS = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com'];

const HOST_KEY_ALGORITHMS: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};

const STDIN_BUFFER_BYTES = 4 * 1024 * 1024;

const DEFAULT_IDENTITIES = ['id_ed25519', 'id_ecdsa', 'id_rsa'];

type Identity =
  | { privateKey: Buffer; passphrase?: string; described: string }
  | { agent: string; described: string };

/**
 * Open an SSH connection and verify the host key against known_hosts before we
 * authenticate: an unknown key is refused unless `acceptNewHostKey`, a changed or revoked
 * one always is. `signal` aborts the connection attempt; close() ends the connection.
 */
export async function connectSsh(options: ConnectSshOptions): Promise<SshTransport> {
  const { signal, onProgress = noProgress } = options;
  signal?.throwIfAborted();
  const address = typeof options.address === 'string' ? parseHostAddress(options.address) : options.address;
  const where = formatHostAddress(address);
  const knownHostsFile = options.knownHostsFile ?? defaultKnownHostsFile();
  const timeoutMs = options.connectTimeoutMs ?? 20_000;
  const identity = await resolveIdentity(options);
  const knownEntries = await readKnownHosts(knownHostsFile);

  onProgress({ step: 'host.connect', status: 'start', detail: `Connecting to ${where}` });

  const client = new Client();
  let refusal: ApertusError | undefined;
  let verifiedKey: PublicKey | undefined;
  let tcpConnected = false;
  let handshakeDone = false;
  let cipher = '';

  const hostVerifier = (blob: Buffer, verify: (valid: boolean) => void): boolean | undefined => {
    // ssh2 asks again at every re-key (OpenSSH re-keys every 1-4 GB of a long upload). Those
    // answers must be synchronous: with an async answer mid-stream ssh2 corrupts the
    // connection ("Bad packet length" on the host). Only the first, which may append to
    // known_hosts, is async.
    if (verifiedKey !== undefined) return sameHostKeyAgain(blob);
    decideHostKey(blob).then(verify, (error: unknown) => {
      refusal =
        error instanceof ApertusError
          ? error
          : new ApertusError('host-key-check-failed', `Could not check the host key of ${where}.`, {
              kind: 'operation',
              cause: error,
            });
      verify(false);
    });
    return undefined;
  };

  const sameHostKeyAgain = (blob: Buffer): boolean => {
    if (verifiedKey?.base64 === blob.toString('base64')) return true;
    refusal = new ApertusError(
      'host-key-changed',
      `The host key of ${where} changed during the connection, to ${fingerprintSha256(publicKeyFromBlob(blob))}.`,
      {
        kind: 'operation',
        hint: 'Someone may be intercepting the connection: check the host before connecting again.',
      },
    );
    return false;
  };

  const decideHostKey = async (blob: Buffer): Promise<boolean> => {
    const presented = publicKeyFromBlob(blob);
    const fingerprint = fingerprintSha256(presented);
    const check = checkHostKey(knownEntries, address.host, address.port, presented);
    const name = knownHostsName(address.host, address.port);
    switch (check.status) {
      case 'match':
        verifiedKey = presented;
        return true;
      case 'revoked':
        refusal = new ApertusError(
          'host-key-revoked',
          `${where} presented the ${presented.type} host key ${fingerprint}, which ${knownHostsFile} line ${check.entry?.line} marks @revoked.`,
          {
            kind: 'operation',
            hint: 'Do not connect: ask the host administrator for the host key that replaced it and install that one.',
          },
        );
        return false;
      case 'changed': {
        const old = check.entry;
        refusal = new ApertusError(
          'host-key-changed',
          `The host key of ${where} has CHANGED: it presented ${presented.type} ${fingerprint}, but ${knownHostsFile} line ${old?.line} holds a different ${old?.key.type} key for it. Someone may be intercepting the connection, or the host was reinstalled.`,
          {
            kind: 'operation',
            hint: `Check the new fingerprint with the host's administrator (on the host: ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub). Only if the change is expected, remove the old key with: ssh-keygen -R ${quoteArg(name)} -f ${quoteArg(knownHostsFile)}, then connect again with --accept-new-host-key.`,
            details: { fingerprint, knownHostsFile, line: old?.line },
          },
        );
        return false;
      }
      case 'unknown': {
        if (!options.acceptNewHostKey) {
          const port = address.port === 22 ? '' : `-p ${address.port} `;
          refusal = new ApertusError(
            'host-key-unknown',
            `${where} is not in ${knownHostsFile}; its ${presented.type} host key fingerprint is ${fingerprint}.`,
            {
              kind: 'operation',
              hint: `Check that fingerprint out of band (on the host: ssh-keygen -lf /etc/ssh/ssh_host_${presented.type.replace(/^ssh-|-sha2-.*$/g, '')}_key.pub), then pass --accept-new-host-key, or add it with: ssh-keyscan ${port}-t ${presented.type} ${quoteArg(address.host)} >> ${quoteArg(knownHostsFile)}`,
              details: { fingerprint, knownHostsFile },
            },
          );
          return false;
        }
        const line = await appendKnownHost(knownHostsFile, address.host, address.port, presented);
        onProgress({
          step: 'host.host-key',
          status: 'info',
          detail: `Trusted new host key of ${where} (${presented.type} ${fingerprint}): added to ${knownHostsFile} line ${line}`,
        });
        verifiedKey = presented;
        return true;
      }
    }
  };

  const config: ConnectConfig = {
    host: address.host,
    port: address.port,
    username: address.user,
    readyTimeout: timeoutMs,
    // Notices a host that vanished during a long upload instead of waiting forever.
    keepaliveInterval: 15_000,
    keepaliveCountMax: 4,
    hostVerifier,
    algorithms: algorithmsFor(knownEntries, address),
    ...('agent' in identity
      ? { agent: identity.agent }
      : { privateKey: identity.privateKey, passphrase: identity.passphrase }),
  };

  const ready = new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      client.destroy();
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const settle = (error?: unknown) => {
      signal?.removeEventListener('abort', onAbort);
      client.removeListener('close', onEarlyClose);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onEarlyClose = () =>
      settle(
        refusal ??
          new ApertusError('host-connection-closed', `${where} closed the connection before it was ready.`, {
            kind: 'operation',
            hint: `Check that ${where} runs sshd and accepts connections (its sshd log says why it closed).`,
          }),
      );
    client.once('connect', () => {
      tcpConnected = true;
    });
    client.once('handshake', (negotiated) => {
      handshakeDone = true;
      cipher = negotiated.cs.cipher;
    });
    client.once('ready', () => settle());
    client.on('close', onEarlyClose);
    client.once('error', (error: Error & { level?: string; code?: string }) => {
      client.destroy();
      settle(refusal ?? connectError(error, { where, identity, tcpConnected, handshakeDone, timeoutMs }));
    });
  });
  // An error after ready (keepalive timeout, reset) must not crash the process: the
  // channels in flight fail through their own close handling.
  let connectionError: Error | undefined;
  client.on('error', (error) => {
    connectionError = error;
  });
  try {
    client.connect(config);
  } catch (error) {
    throw new ApertusError('ssh-config-invalid', `Cannot connect to ${where}: ${(error as Error).message}.`, {
      cause: error,
    });
  }
  try {
    await ready;
  } catch (error) {
    onProgress({ step: 'host.connect', status: 'fail', detail: (error as Error).message });
    throw error;
  }

  let closed = false;
  client.on('close', () => {
    closed = true;
  });
  const hostKey = verifiedKey ? `${verifiedKey.type} ${fingerprintSha256(verifiedKey)}` : '';
  onProgress({ step: 'host.connect', status: 'ok', detail: `Connected to ${where} (${hostKey}, ${cipher})` });
  const description = `ssh ${where}`;

  const lostError = (what: string) =>
    new ApertusError('host-connection-lost', `The SSH connection to ${where} was lost during ${what}.`, {
      kind: 'operation',
      hint: `Check that ${where} is up and reachable, then run the same command again.`,
      cause: connectionError,
    });

  const openExec = (command: string): Promise<ClientChannel> =>
    new Promise((resolve, reject) => {
      if (closed) {
        reject(lostError(`'${command}'`));
        return;
      }
      client.exec(remoteCommandLine(command), (error, channel) => {
        if (error) {
          reject(
            new ApertusError('remote-exec-refused', `${where} refused to run a command: ${error.message}.`, {
              kind: 'operation',
              hint: 'Check MaxSessions and the ForceCommand settings of its sshd.',
              cause: error,
            }),
          );
        } else resolve(channel);
      });
    });

  /**
   * Run `command`, feed it `stdin`, collect its output. Resolves with the exit code once the
   * channel closes; rejects on abort, a stdin failure, or a lost connection.
   */
  const runChannel = async (
    command: string,
    stdin: ExecOptions['stdin'],
    runSignal: AbortSignal | undefined,
    onBytes?: (done: number) => void,
  ): Promise<{ result: ExecResult; stdinBytes: number }> => {
    runSignal?.throwIfAborted();
    const channel = await openExec(command);
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let exitCode: number | undefined;
    let stdinBytes = 0;
    let channelClosed = false;
    let sourceError: unknown;
    let remotePid: number | undefined;
    let killWhenPidKnown = false;
    channel.on('data', (chunk: Buffer) => stdout.push(chunk));
    channel.stderr.on('data', (chunk: Buffer) => {
      stderr.push(chunk);
      if (remotePid !== undefined) return;
      remotePid = findRemotePid(Buffer.concat(stderr).toString('latin1'));
      if (remotePid !== undefined && killWhenPidKnown) killRemote(remotePid);
    });
    channel.on('exit', (...args: unknown[]) => {
      const [code, signalName] = args;
      exitCode = typeof code === 'number' ? code : 128 + signalNumber(signalName as string | undefined);
    });
    // Writes racing the close of a channel whose command already exited end up here;
    // the exit code says what happened.
    channel.on('error', () => {});
    const closedChannel = new Promise<void>((resolve) =>
      channel.once('close', () => {
        channelClosed = true;
        resolve();
      }),
    );

    let onAborted: () => void = () => {};
    const aborted = new Promise<void>((resolve) => {
      onAborted = resolve;
    });
    const abort = () => {
      if (remotePid === undefined) killWhenPidKnown = true;
      else killRemote(remotePid);
      channel.close();
      onAborted();
    };
    runSignal?.addEventListener('abort', abort, { once: true });
    try {
      const fed = feedStdin(
        channel,
        stdin,
        (bytes) => {
          stdinBytes += bytes;
          onBytes?.(stdinBytes);
        },
        () => channelClosed,
      ).catch((error: unknown) => {
        if (channelClosed) return;
        sourceError = error;
        channel.close();
      });
      // On abort, do not wait for the command to die: the kill runs on, we report now.
      await Promise.race([closedChannel, aborted]);
      // A command may exit without reading all its input (`head -c 1`, `cat > /full/disk`):
      // stop reading the source then, as a closed pipe would.
      if (isReadable(stdin) && !stdin.readableEnded) stdin.destroy();
      runSignal?.throwIfAborted();
      await fed;
      if (sourceError !== undefined) throw sourceError;
      if (exitCode === undefined) {
        if (closed) throw lostError(`'${command}'`);
        // No exit status at all: ssh reports 255 in that case, so do we.
        exitCode = 255;
      }
      const result = execResult(
        command,
        exitCode,
        Buffer.concat(stdout).toString('utf8'),
        stripPidLine(Buffer.concat(stderr).toString('utf8')),
      );
      return { result, stdinBytes };
    } finally {
      runSignal?.removeEventListener('abort', abort);
    }
  };

  /**
   * Kill an aborted command and everything it started. OpenSSH ignores "signal" requests
   * for root sessions ("requires privilege separation"), but sshd starts each command in
   * its own session, so its pid is the process group to kill.
   */
  const killRemote = (pid: number): void => {
    if (closed) return;
    try {
      client.exec(`kill -KILL -- -${pid} 2>/dev/null || kill -KILL ${pid} 2>/dev/null`, (error, channel) => {
        if (error) return;
        channel.on('error', () => {});
        channel.resume();
        channel.stderr.resume();
        channel.end();
      });
    } catch {}
  };

  return {
    description,
    address,
    hostKey,
    cipher,

    async exec(command: string, execOptions: ExecOptions = {}): Promise<ExecResult> {
      const { result } = await runChannel(command, execOptions.stdin, execOptions.signal);
      if (result.failed && execOptions.reject !== false) throw commandFailedError(result, description);
      return result;
    },

    async upload(source: Readable, remotePath: string, uploadOptions: UploadOptions): Promise<void> {
      const command = `cat > ${quoteArg(remotePath)}`;
      const { result, stdinBytes } = await runChannel(
        command,
        source,
        uploadOptions.signal,
        uploadOptions.onBytes,
      );
      if (result.failed) {
        const why =
          result.stderr.trim().split('\n').slice(-5).join('\n') || `cat exited with code ${result.exitCode}`;
        throw new ApertusError('upload-failed', `Upload to ${remotePath} on ${where} failed: ${why}`, {
          kind: 'operation',
          hint: `Check that the directory of ${remotePath} exists on the host, is writable by ${address.user}, and has ${uploadOptions.size} bytes free (df -h).`,
          details: result,
        });
      }
      if (stdinBytes !== uploadOptions.size) {
        throw new ApertusError(
          'upload-size-mismatch',
          `Upload to ${remotePath} on ${where} sent ${stdinBytes} bytes, but ${uploadOptions.size} were expected.`,
          { kind: 'operation', hint: 'The local file changed while it was read; run the command again.' },
        );
      }
    },

    connect(port: number, host = '127.0.0.1'): Promise<Duplex> {
      return new Promise((resolve, reject) => {
        if (closed) {
          reject(lostError(`a connection to ${host}:${port}`));
          return;
        }
        client.forwardOut('127.0.0.1', 0, host, port, (error, channel) => {
          if (error) {
            reject(
              new ApertusError(
                'host-port-unreachable',
                `Cannot reach ${host}:${port} on ${where} through SSH: ${error.message}.`,
                {
                  kind: 'operation',
                  hint: `Check that the service listens on ${host}:${port} on the host (ss -ltn) and that its sshd allows TCP forwarding (AllowTcpForwarding).`,
                  cause: error,
                },
              ),
            );
          } else resolve(channel);
        });
      });
    },

    async close(): Promise<void> {
      if (closed) return;
      const done = new Promise<void>((resolve) => client.once('close', () => resolve()));
      client.end();
      const timer = setTimeout(() => client.destroy(), 5_000);
      try {
        await done;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Write stdin into the channel with backpressure, then send EOF. */
async function feedStdin(
  channel: ClientChannel,
  stdin: ExecOptions['stdin'],
  onChunk: (bytes: number) => void,
  isClosed: () => boolean,
): Promise<void> {
  if (stdin === undefined) {
    channel.end();
    return;
  }
  if (typeof stdin === 'string' || Buffer.isBuffer(stdin)) {
    const data = typeof stdin === 'string' ? Buffer.from(stdin) : stdin;
    channel.end(data);
    onChunk(data.length);
    return;
  }
  const closedOrDrained = () =>
    new Promise<void>((resolve) => {
      const done = () => {
        channel.removeListener('drain', done);
        channel.removeListener('close', done);
        resolve();
      };
      channel.once('drain', done);
      channel.once('close', done);
    });
  try {
    for await (const chunk of stdin) {
      if (isClosed()) return;
      const data = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      onChunk(data.length);
      channel.write(data);
      // Wait on our own, larger mark rather than the stream's 16 KiB: a drain per 64 KiB
      // read halves throughput, while ssh2 still only sends what the host's window allows.
      if (channel.writableLength >= STDIN_BUFFER_BYTES) await closedOrDrained();
    }
    if (!isClosed()) channel.end();
  } catch (error) {
    throw new ApertusError(
      'upload-source-failed',
      `Reading the data to send failed: ${(error as Error).message}.`,
      {
        kind: 'operation',
        cause: error,
      },
    );
  }
}

function isReadable(stdin: ExecOptions['stdin']): stdin is Readable {
  return stdin !== undefined && typeof stdin !== 'string' && !Buffer.isBuffer(stdin);
}

async function resolveIdentity(options: ConnectSshOptions): Promise<Identity> {
  if (options.identityFile !== undefined) {
    return loadIdentity(options.identityFile, options.identityPassphrase);
  }
  const agent = process.env.SSH_AUTH_SOCK;
  if (agent) return { agent, described: `the ssh-agent at ${agent}` };
  for (const name of DEFAULT_IDENTITIES) {
    const file = join(homedir(), '.ssh', name);
    const exists = await access(file).then(
      () => true,
      () => false,
    );
    if (exists) return loadIdentity(file, options.identityPassphrase);
  }
  throw new ApertusError('identity-missing', 'No SSH identity to log in with.', {
    hint: `Pass a private key with --identity FILE, or start ssh-agent and add your key (ssh-add), or create ~/.ssh/id_ed25519.`,
  });
}

async function loadIdentity(file: string, passphrase: string | undefined): Promise<Identity> {
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (cause) {
    throw new ApertusError('identity-unreadable', `Cannot read the SSH identity ${file}.`, {
      hint: 'Check the path and its permissions, or pass another key with --identity FILE.',
      cause,
    });
  }
  const parsed = utils.parseKey(data, passphrase);
  if (parsed instanceof Error) {
    if (/encrypted/i.test(parsed.message) && passphrase === undefined) {
      throw new ApertusError(
        'identity-encrypted',
        `The SSH identity ${file} is encrypted with a passphrase.`,
        {
          hint: `Add it to ssh-agent (ssh-add ${quoteArg(file)}) and run without --identity, so the agent signs for apertus.`,
          cause: parsed,
        },
      );
    }
    throw new ApertusError('identity-invalid', `Cannot use ${file} as an SSH identity: ${parsed.message}.`, {
      hint: 'Pass an OpenSSH private key (ed25519, ecdsa or rsa), e.g. one made by ssh-keygen -t ed25519.',
      cause: parsed,
    });
  }
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key.getPrivatePEM() === null) {
    throw new ApertusError('identity-invalid', `${file} holds no private key (is it the .pub file?).`, {
      hint: 'Pass the private key file, without .pub, with --identity FILE.',
    });
  }
  return { privateKey: data, passphrase, described: file };
}

/** Offer the host key types known_hosts already holds first, as ssh does, so a host with
 * several keys presents the one we can check rather than one we have never seen. */
function algorithmsFor(entries: readonly KnownHostsEntry[], address: HostAddress): Algorithms {
  const known = knownKeyTypes(entries, address.host, address.port);
  const preferred = known.flatMap((type) => HOST_KEY_ALGORITHMS[type] ?? []);
  return {
    cipher: { remove: PREFERRED_CIPHERS, prepend: PREFERRED_CIPHERS } as Algorithms['cipher'],
    ...(preferred.length > 0
      ? { serverHostKey: { remove: preferred, prepend: preferred } as Algorithms['serverHostKey'] }
      : {}),
  };
}

function connectError(
  error: Error & { level?: string; code?: string },
  context: {
    where: string;
    identity: Identity;
    tcpConnected: boolean;
    handshakeDone: boolean;
    timeoutMs: number;
  },
): ApertusError {
  const { where } = context;
  const seconds = Math.round(context.timeoutMs / 100) / 10;
  const options = (hint: string) => ({ kind: 'operation' as const, hint, cause: error });
  if (error.level === 'client-authentication') {
    return new ApertusError(
      'auth-failed',
      `${where} refused to log in with ${context.identity.described}.`,
      options(
        `Check the user name, and that the matching public key is in ~/.ssh/authorized_keys of that user on the host; pass another key with --identity FILE.`,
      ),
    );
  }
  if (error.level === 'client-timeout') {
    if (!context.tcpConnected) {
      return new ApertusError(
        'host-unreachable',
        `No answer from ${where} within ${seconds} s.`,
        options(
          'Check the address and port, that the host is up, and that no firewall drops SSH on the way.',
        ),
      );
    }
    return new ApertusError(
      'ssh-timeout',
      `${where} accepted the TCP connection but did not complete the SSH ${context.handshakeDone ? 'login' : 'handshake'} within ${seconds} s.`,
      options('Check that this port is sshd (not another service) and that the host is not overloaded.'),
    );
  }
  switch (error.code) {
    case 'ECONNREFUSED':
      return new ApertusError(
        'host-connection-refused',
        `${where} refused the connection: nothing listens on that port.`,
        options('Check that sshd runs on the host and the port is right (USER@ADDR:PORT).'),
      );
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ETIMEDOUT':
      return new ApertusError(
        'host-unreachable',
        `${where} cannot be reached (${error.code}).`,
        options('Check the address, that the host is up, and the route to it (ip route get ADDR).'),
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ApertusError(
        'host-not-found',
        `The host name in ${where} does not resolve (${error.code}).`,
        options('Use the IP address, or add the name to /etc/hosts on this machine.'),
      );
  }
  if (/Host denied|no matching/i.test(error.message)) {
    return new ApertusError(
      'ssh-negotiation-failed',
      `SSH with ${where} failed during key exchange: ${error.message}.`,
      options(
        'The host offers no algorithm apertus supports, or no host key of a type known_hosts holds for it.',
      ),
    );
  }
  return new ApertusError(
    'ssh-connect-failed',
    `SSH connection to ${where} failed: ${error.message}.`,
    options('Check the address and that sshd on the host is running.'),
  );
}

const PID_MARKER = 'apertus-remote-pid:';

/**
 * The line sshd runs for `command`: sshd hands it to the user's login shell, which may not
 * be sh, so run it in `sh -c` as the Transport promises; first report the session's pid on
 * stderr (removed again from the result) so an abort can kill the command.
 */
function remoteCommandLine(command: string): string {
  return `printf '${PID_MARKER}%s\\n' "$$" >&2; exec sh -c ${quoteArg(command)}`;
}

function findRemotePid(stderr: string): number | undefined {
  const match = new RegExp(`${PID_MARKER}(\\d+)\\n`).exec(stderr);
  return match ? Number(match[1]) : undefined;
}

function stripPidLine(stderr: string): string {
  return stderr.replace(new RegExp(`${PID_MARKER}\\d+\\n`), '');
}

function signalNumber(name: string | undefined): number {
  const numbers: Record<string, number> = {
    HUP: 1,
    INT: 2,
    QUIT: 3,
    ABRT: 6,
    KILL: 9,
    SEGV: 11,
    PIPE: 13,
    TERM: 15,
  };
  return (name && numbers[name.replace(/^SIG/, '')]) || 127;
}
