import type { Duplex } from 'node:stream';
import { ApertusError } from '../errors.js';
import type { SshConnection } from './ssh-connection.js';

/** Transport.connect over SSH: a TCP connection to `host:port` as the host sees it (direct-tcpip). */
export function forwardPort(connection: SshConnection, port: number, host: string): Promise<Duplex> {
  const { client, where } = connection;
  return new Promise((resolve, reject) => {
    if (connection.isClosed()) {
      reject(connection.lostError(`a connection to ${host}:${port}`));
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
}
