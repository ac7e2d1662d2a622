import { type BecomeOptions, becomeRoot } from '../host/become.js';
import { createLocalTransport } from '../host/local-transport.js';
import { loadSshConfig, parseSshConfig } from '../host/ssh-config.js';
import { connectSshRoute } from '../host/ssh-jump.js';
import { resolveSshRoute, type SshRoute } from '../host/ssh-route.js';
import type { Transport } from '../host/transport.js';
import type { RunOptions } from '../progress.js';

/** Where an install goes: a host over SSH, or the machine apertus runs on. */
export type InstallTarget =
  | {
      kind: 'ssh';
      /** [USER@]ADDR[:PORT], where ADDR may be an ssh_config alias. */
      address: string;
      identityFile?: string | undefined;
      knownHostsFile?: string | undefined;
      acceptNewHostKey?: boolean | undefined;
      /** Jump hosts, `USER@HOST[:PORT][,...]` or `none`; beats the config's ProxyJump. */
      jump?: string | undefined;
      /** ssh_config to read; default ~/.ssh/config; `none` reads none (as `ssh -F none`). */
      sshConfigFile?: string | undefined;
      /** Run every command as root through sudo (the login user is not root). */
      become?: BecomeOptions | undefined;
    }
  | { kind: 'local'; become?: BecomeOptions | undefined };

/** The route `target` resolves to through ssh_config and the flags, without connecting. */
export async function resolveTargetRoute(target: Extract<InstallTarget, { kind: 'ssh' }>): Promise<SshRoute> {
  const config =
    target.sshConfigFile === 'none' ? parseSshConfig('none', '') : await loadSshConfig(target.sshConfigFile);
  return resolveSshRoute(config, {
    address: target.address,
    identityFile: target.identityFile,
    knownHostsFile: target.knownHostsFile,
    jump: target.jump,
  });
}

export async function openTarget(target: InstallTarget, run: RunOptions): Promise<Transport> {
  const transport: Transport =
    target.kind === 'local'
      ? createLocalTransport()
      : await connectSshRoute(await resolveTargetRoute(target), {
          acceptNewHostKey: target.acceptNewHostKey ?? false,
          ...(run.signal ? { signal: run.signal } : {}),
          ...(run.onProgress ? { onProgress: run.onProgress } : {}),
        });
  if (!target.become) return transport;
  try {
    return await becomeRoot(transport, target.become);
  } catch (error) {
    await transport.close().catch(() => undefined);
    throw error;
  }
}
