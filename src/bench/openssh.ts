/** How the bench reaches a demo host with OpenSSH's own tools (ssh, scp), as apertus reaches it. */
import { bracketHost, parseHostAddress } from '../core/host/host-address.js';
import { runProcess } from './measure.js';

export interface OpensshTarget {
  /** ssh and scp options: our options only, the demo host's key and known_hosts. */
  options: string[];
  /** USER@HOST, for `ssh -p PORT DEST` and `scp -P PORT FILE DEST:PATH`. */
  destination: string;
  port: string;
}

export function opensshTarget(host: {
  address: string;
  identityFile: string;
  knownHostsFile: string;
}): OpensshTarget {
  const address = parseHostAddress(host.address);
  return {
    options: [
      // No ~/.ssh/config (Compression, ControlMaster) skews the numbers.
      ...['-F', '/dev/null', '-i', host.identityFile],
      ...['-o', `UserKnownHostsFile=${host.knownHostsFile}`, '-o', 'StrictHostKeyChecking=yes'],
      ...['-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes'],
    ],
    destination: `${address.user}@${bracketHost(address.host)}`,
    port: String(address.port),
  };
}

/** The client-to-server cipher OpenSSH picks for this host, from `ssh -v`. */
export async function opensshCipher(sshArgs: string[], signal: AbortSignal): Promise<string | null> {
  const { stderr } = await runProcess(['ssh', '-v', ...sshArgs, 'true'], { signal, stderrTail: 1 << 16 });
  return /kex: client->server cipher: (\S+)/.exec(stderr)?.[1] ?? null;
}
