import type { Client } from 'ssh2';
import { ApertusError } from '../errors.js';
import type { HostAddress } from './host-address.js';

/** A ready ssh2 client and what the commands, uploads and forwards over it need to know. */
export interface SshConnection {
  readonly client: Client;
  readonly address: HostAddress;
  /** formatHostAddress(address), for messages. */
  readonly where: string;
  /** The Transport's description, `ssh root@169.254.10.2:22`. */
  readonly description: string;
  /** Whether the connection has closed: nothing more can be opened on it. */
  isClosed(): boolean;
  /** The error for `what` (a command, a forward) cut short by the connection going away. */
  lostError(what: string): ApertusError;
}

/** The connection went away under `what`; `cause` is the ssh2 error that ended it, if any. */
export function connectionLostError(where: string, what: string, cause: Error | undefined): ApertusError {
  return new ApertusError('host-connection-lost', `The SSH connection to ${where} was lost during ${what}.`, {
    kind: 'operation',
    hint: `Check that ${where} is up and reachable, then run the same command again.`,
    cause,
  });
}
