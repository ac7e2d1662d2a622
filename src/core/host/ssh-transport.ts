import type { Duplex, Readable } from 'node:stream';
import ssh2, { type ConnectConfig, type Client as SshClient } from 'ssh2';
import type { ApertusError } from '../errors.js';
import { noProgress, type RunOptions } from '../progress.js';
import { formatHostAddress, type HostAddress, parseHostAddress } from './host-address.js';
import { defaultKnownHostsFile, fingerprintSha256, readKnownHosts } from './known-hosts.js';
import { algorithmsFor } from './ssh-algorithms.js';
import {
  type ConnectAttempt,
  closedBeforeReadyError,
  configInvalidError,
  connectError,
} from './ssh-connect-errors.js';
import { connectionLostError, type SshConnection } from './ssh-connection.js';
import { execOverSsh } from './ssh-exec.js';
import { createHostKeyVerifier } from './ssh-host-key.js';
import { authMethods, resolveIdentity } from './ssh-identity.js';
import { forwardPort } from './ssh-port-forward.js';
import { uploadOverSsh } from './ssh-upload.js';
import type { ExecOptions, ExecResult, Transport, UploadOptions } from './transport.js';

// ssh2 is CommonJS: Node's ESM loader only finds its exports through the default import.
const { Client } = ssh2;

export interface ConnectSshOptions extends RunOptions {
  /** `USER@ADDR[:PORT]` or an already parsed address. */
  address: string | HostAddress;
  /**
   * OpenSSH private key (ed25519, ecdsa, rsa). Without it: the ssh-agent at SSH_AUTH_SOCK,
   * else the first of ~/.ssh/id_ed25519, id_ecdsa, id_rsa that exists, as `ssh` does.
   */
  identityFile?: string;
  /** Several identity files, tried in order (ssh_config IdentityFile); identityFile goes first. */
  identityFiles?: readonly string[];
  /** Use only the keys of the identity files, not the agent's others (ssh_config IdentitiesOnly). */
  identitiesOnly?: boolean;
  /** For an encrypted identityFile. */
  identityPassphrase?: string;
  /** Default ~/.ssh/known_hosts. */
  knownHostsFile?: string;
  /** Trust and record a host key known_hosts does not know yet (never a changed one). */
  acceptNewHostKey?: boolean;
  /** How long the host has to answer, verify and accept us. Default 20 s. */
  connectTimeoutMs?: number;
  /** Keepalive probe interval (ssh_config ServerAliveInterval). Default 15 s. */
  keepaliveIntervalMs?: number;
  /**
   * A stream already connected to the host's sshd (a forwardOut channel through a jump
   * host) instead of a TCP connection of our own; `address` is still the host's real
   * address, which known_hosts is checked against.
   */
  sock?: Duplex;
  /** The jump path, `ops@bastion:22`, for the description: `ssh root@10.0.0.5:22 via ...`. */
  via?: string;
}

/** A Transport over SSH, with what was verified about the host, for audit records. */
export interface SshTransport extends Transport {
  readonly address: HostAddress;
  /** The verified host key, `ssh-ed25519 SHA256:...`. */
  readonly hostKey: string;
  /** Negotiated client-to-server cipher, e.g. aes128-gcm@openssh.com. */
  readonly cipher: string;
}

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
  const identity = await resolveIdentity({
    identityFiles: [
      ...(options.identityFile ? [options.identityFile] : []),
      ...(options.identityFiles ?? []),
    ],
    ...(options.identityPassphrase === undefined ? {} : { identityPassphrase: options.identityPassphrase }),
    ...(options.identitiesOnly === undefined ? {} : { identitiesOnly: options.identitiesOnly }),
  });
  const knownEntries = await readKnownHosts(knownHostsFile);

  onProgress({
    step: 'host.connect',
    status: 'start',
    detail: `Connecting to ${where}${options.via ? ` via ${options.via}` : ''}`,
  });

  const client = new Client();
  const hostKeys = createHostKeyVerifier({
    address,
    where,
    knownHostsFile,
    knownEntries,
    acceptNewHostKey: options.acceptNewHostKey,
    onProgress,
  });
  const config: ConnectConfig = {
    host: address.host,
    port: address.port,
    username: address.user,
    readyTimeout: timeoutMs,
    // Notices a host that vanished during a long upload instead of waiting forever.
    keepaliveInterval: options.keepaliveIntervalMs ?? 15_000,
    keepaliveCountMax: 4,
    hostVerifier: hostKeys.hostVerifier,
    algorithms: algorithmsFor(knownEntries, address),
    authHandler: authMethods(identity, address.user),
    ...(options.sock ? { sock: options.sock } : {}),
  };

  const ready = untilReady(client, { signal, where, identity, timeoutMs, refusal: hostKeys.refusal });
  // An error after ready (keepalive timeout, reset) must not crash the process: the
  // channels in flight fail through their own close handling.
  let connectionError: Error | undefined;
  client.on('error', (error) => {
    connectionError = error;
  });
  try {
    client.connect(config);
  } catch (error) {
    throw configInvalidError(where, error);
  }
  let cipher: string;
  try {
    cipher = await ready;
  } catch (error) {
    onProgress({ step: 'host.connect', status: 'fail', detail: (error as Error).message });
    throw error;
  }

  let closed = false;
  client.on('close', () => {
    closed = true;
  });
  const verifiedKey = hostKeys.verifiedKey();
  const hostKey = verifiedKey ? `${verifiedKey.type} ${fingerprintSha256(verifiedKey)}` : '';
  onProgress({ step: 'host.connect', status: 'ok', detail: `Connected to ${where} (${hostKey}, ${cipher})` });
  const connection: SshConnection = {
    client,
    address,
    where,
    description: options.via ? `ssh ${where} via ${options.via}` : `ssh ${where}`,
    isClosed: () => closed,
    lostError: (what) => connectionLostError(where, what, connectionError),
  };

  return {
    description: connection.description,
    address,
    hostKey,
    cipher,

    exec(command: string, execOptions?: ExecOptions): Promise<ExecResult> {
      return execOverSsh(connection, command, execOptions);
    },

    upload(source: Readable, remotePath: string, uploadOptions: UploadOptions): Promise<void> {
      return uploadOverSsh(connection, source, remotePath, uploadOptions);
    },

    connect(port: number, host = '127.0.0.1'): Promise<Duplex> {
      return forwardPort(connection, port, host);
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

interface ReadyContext extends Pick<ConnectAttempt, 'where' | 'identity' | 'timeoutMs'> {
  signal: AbortSignal | undefined;
  /** Why the host key check refused the host, which explains a close or error better than ssh2 can. */
  refusal: () => ApertusError | undefined;
}

/**
 * Wait until `client` has connected, passed the host key check and logged in; resolves with
 * the negotiated client-to-server cipher. Call it before client.connect(), so that no event
 * is missed.
 */
function untilReady(client: SshClient, context: ReadyContext): Promise<string> {
  const { signal, where, identity, timeoutMs, refusal } = context;
  let tcpConnected = false;
  let handshakeDone = false;
  let cipher = '';
  return new Promise<string>((resolve, reject) => {
    const onAbort = () => {
      client.destroy();
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const settle = (error?: unknown) => {
      signal?.removeEventListener('abort', onAbort);
      client.removeListener('close', onEarlyClose);
      if (error === undefined) resolve(cipher);
      else reject(error);
    };
    const onEarlyClose = () => settle(refusal() ?? closedBeforeReadyError(where));
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
      settle(refusal() ?? connectError(error, { where, identity, tcpConnected, handshakeDone, timeoutMs }));
    });
  });
}
