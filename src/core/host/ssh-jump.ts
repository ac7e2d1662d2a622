/**
 * Connect along a route: each jump host over SSH, then a `direct-tcpip` channel (ssh2
 * forwardOut) from it to the next hop's sshd, and the next SSH connection over that channel,
 * as `ssh -J` does. No local port is opened, so nothing else on this machine can use the
 * tunnel, and reports name the real target and the jump path.
 *
 * Every hop's host key is checked against known_hosts under the hop's real address before we
 * authenticate to it, and the channel to the next hop is opened only after that: a changed
 * or unknown key at any hop stops the route there, before a byte goes past it.
 */
import { noProgress, type RunOptions } from '../progress.js';
import { formatHostAddress } from './host-address.js';
import type { SshHop, SshRoute } from './ssh-route.js';
import { connectSsh, type SshTransport } from './ssh-transport.js';

export interface ConnectRouteOptions extends RunOptions {
  /** Trust and record a key known_hosts does not know yet (never a changed one), at every hop. */
  acceptNewHostKey?: boolean;
}

export async function connectSshRoute(route: SshRoute, options: ConnectRouteOptions): Promise<SshTransport> {
  const { signal, onProgress = noProgress } = options;
  const opened: SshTransport[] = [];
  const closeOpened = async () => {
    for (const transport of opened.reverse()) await transport.close().catch(() => {});
  };
  try {
    let via: string | undefined;
    let sock: Awaited<ReturnType<SshTransport['connect']>> | undefined;
    const hops = [...route.jumps, route.target];
    for (const [index, hop] of hops.entries()) {
      const transport = await connectSsh({
        ...hopOptions(hop),
        ...(sock ? { sock } : {}),
        ...(via ? { via } : {}),
        acceptNewHostKey: options.acceptNewHostKey ?? false,
        ...(signal ? { signal } : {}),
        onProgress,
      });
      opened.push(transport);
      const next = hops[index + 1];
      if (next === undefined) break;
      sock = await transport.connect(next.address.port, next.address.host);
      via = via ? `${via},${formatHostAddress(hop.address)}` : formatHostAddress(hop.address);
    }
    const target = opened.at(-1) as SshTransport;
    const jumps = opened.slice(0, -1);
    if (jumps.length === 0) return target;
    return {
      ...target,
      exec: target.exec.bind(target),
      upload: target.upload.bind(target),
      connect: target.connect.bind(target),
      async close() {
        await target.close();
        for (const jump of jumps.reverse()) await jump.close();
      },
    };
  } catch (error) {
    await closeOpened();
    throw error;
  }
}

function hopOptions(hop: SshHop) {
  return {
    address: hop.address,
    identityFiles: hop.identityFiles,
    identitiesOnly: hop.identitiesOnly,
    ...(hop.knownHostsFile === undefined ? {} : { knownHostsFile: hop.knownHostsFile }),
    ...(hop.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: hop.connectTimeoutMs }),
    ...(hop.keepaliveIntervalMs === undefined ? {} : { keepaliveIntervalMs: hop.keepaliveIntervalMs }),
  };
}
