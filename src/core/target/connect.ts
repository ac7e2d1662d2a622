import { createLocalTransport } from '../host/local-transport.js';
import { connectSsh } from '../host/ssh-transport.js';
import type { Transport } from '../host/transport.js';
import type { RunOptions } from '../progress.js';

/** Where an install goes: a host over SSH, or the machine apertus runs on. */
export type InstallTarget =
  | {
      kind: 'ssh';
      /** USER@ADDR[:PORT] */
      address: string;
      identityFile?: string | undefined;
      knownHostsFile?: string | undefined;
      acceptNewHostKey?: boolean | undefined;
    }
  | { kind: 'local' };

export async function openTarget(target: InstallTarget, run: RunOptions): Promise<Transport> {
  if (target.kind === 'local') return createLocalTransport();
  return connectSsh({
    address: target.address,
    identityFile: target.identityFile,
    knownHostsFile: target.knownHostsFile,
    acceptNewHostKey: target.acceptNewHostKey ?? false,
    signal: run.signal,
    onProgress: run.onProgress,
  });
}
