import { ApertusError } from '../errors.js';
import type { Identity } from './ssh-identity.js';

/** What the connection attempt had got to when ssh2 failed, to tell the causes apart. */
export interface ConnectAttempt {
  where: string;
  identity: Identity;
  tcpConnected: boolean;
  handshakeDone: boolean;
  timeoutMs: number;
}

/** The ApertusError, with its next step, for an ssh2 error before the connection was ready. */
export function connectError(
  error: Error & { level?: string; code?: string },
  context: ConnectAttempt,
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

/** Closed by the host before the connection was ready, with no host key refusal to explain it. */
export function closedBeforeReadyError(where: string): ApertusError {
  return new ApertusError('host-connection-closed', `${where} closed the connection before it was ready.`, {
    kind: 'operation',
    hint: `Check that ${where} runs sshd and accepts connections (its sshd log says why it closed).`,
  });
}

/** ssh2 threw on the config itself, before any network traffic. */
export function configInvalidError(where: string, error: unknown): ApertusError {
  return new ApertusError('ssh-config-invalid', `Cannot connect to ${where}: ${(error as Error).message}.`, {
    cause: error,
  });
}
