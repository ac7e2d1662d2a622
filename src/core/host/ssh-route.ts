/**
 * The way to a host: the host itself as ssh_config and the flags name it, and the jump hosts
 * before it (`--jump`, inventory `jump:`, ssh_config `ProxyJump`). Resolving is apart from
 * connecting, so it is checked (and tested) without a network, and a bad config fails before
 * a connection starts.
 *
 * Precedence, as ssh(1) has it: what the operator passes (`user@` and `:port` in --host,
 * --identity, --known-hosts, --jump) beats the config file, which beats the defaults.
 */
import { formatHostAddress, type HostAddress, parseHostAddress } from './host-address.js';
import { jumpListError, MAX_JUMP_HOPS, parseJumpList } from './jump-list.js';
import { resolveSshConfigHost, type SshConfigFile } from './ssh-config.js';

/** One SSH connection of a route, everything resolved. */
export interface SshHop {
  /** The name the operator used (an ssh_config alias, or the address itself). */
  alias: string;
  address: HostAddress;
  /** In the order ssh tries them; empty means the agent, then ~/.ssh/id_*. */
  identityFiles: string[];
  identitiesOnly: boolean;
  /** Undefined: ~/.ssh/known_hosts. */
  knownHostsFile?: string;
  connectTimeoutMs?: number;
  keepaliveIntervalMs?: number;
}

/** Jump hosts in the order they are visited, then the target. */
export interface SshRoute {
  jumps: SshHop[];
  target: SshHop;
}

export interface SshRouteRequest {
  /** `[USER@]HOST[:PORT]`, where HOST may be an ssh_config alias. */
  address: string;
  /** --identity: replaces the config's IdentityFile for the target. */
  identityFile?: string | undefined;
  /** --known-hosts: every hop is checked against it. */
  knownHostsFile?: string | undefined;
  /** --jump or inventory jump: `USER@HOST[:PORT][,...]`, or 'none'; beats ProxyJump. */
  jump?: string | undefined;
  /** Default user when neither the address nor the config names one (inventories: root). */
  defaultUser?: string | undefined;
}

export function resolveSshRoute(config: SshConfigFile, request: SshRouteRequest): SshRoute {
  const target = resolveHop(config, request.address, {
    identityFile: request.identityFile,
    knownHostsFile: request.knownHostsFile,
    defaultUser: request.defaultUser,
  });
  const configJump = resolveSshConfigHost(config, aliasOf(request.address)).proxyJump;
  const jumpText = request.jump ?? (configJump === 'none' ? 'none' : configJump?.join(','));
  const hops = parseJumpList(jumpText);
  if (hops.length > MAX_JUMP_HOPS) {
    throw jumpListError(
      jumpText ?? '',
      `it names ${hops.length} jump hosts; at most ${MAX_JUMP_HOPS} are followed`,
    );
  }
  // A hop is resolved against the config as `ssh -J` does (its HostName, User, Port,
  // IdentityFile); --known-hosts applies to every hop, since the operator named one file.
  // Unlike `ssh -i`, --identity also serves a hop the config gives no IdentityFile: an
  // inventory names one identity per host, and a bastion usually takes the same key.
  const jumps = hops.map((hop) =>
    resolveHop(config, hop, {
      knownHostsFile: request.knownHostsFile,
      fallbackIdentity: request.identityFile,
    }),
  );
  return { jumps, target };
}

/** How a route is written in reports and audit records: the jump path, never a local port. */
export function describeJumps(route: SshRoute): string | undefined {
  if (route.jumps.length === 0) return undefined;
  return route.jumps.map((hop) => formatHostAddress(hop.address)).join(',');
}

interface HopFlags {
  identityFile?: string | undefined;
  /** Used when neither a flag nor the config names an identity. */
  fallbackIdentity?: string | undefined;
  knownHostsFile?: string | undefined;
  defaultUser?: string | undefined;
}

function aliasOf(text: string): string {
  // Parsing with no defaults tells what the text itself names; port 0 and user '' mean "not named".
  return parseHostAddress(text, { defaultUser: '', defaultPort: 0 }).host;
}

function resolveHop(config: SshConfigFile, text: string, flags: HopFlags): SshHop {
  const named = parseHostAddress(text, { defaultUser: '', defaultPort: 0 });
  const fromConfig = resolveSshConfigHost(config, named.host);
  const user = named.user !== '' ? named.user : (fromConfig.user ?? flags.defaultUser);
  const port = named.port !== 0 ? named.port : (fromConfig.port ?? 22);
  const host = fromConfig.hostName ?? named.host;
  // Built back into text and parsed again, so a HostName or User from the config passes the
  // same checks as one on the command line.
  const hostText = host.includes(':') ? `[${host}]` : host;
  const address = parseHostAddress(`${user === undefined ? '' : `${user}@`}${hostText}:${port}`);
  const knownHostsFile = flags.knownHostsFile ?? fromConfig.userKnownHostsFiles[0];
  const hop: SshHop = {
    alias: named.host,
    address,
    identityFiles: flags.identityFile
      ? [flags.identityFile]
      : fromConfig.identityFiles.length === 0 && flags.fallbackIdentity
        ? [flags.fallbackIdentity]
        : fromConfig.identityFiles,
    identitiesOnly: fromConfig.identitiesOnly ?? false,
  };
  if (knownHostsFile !== undefined) hop.knownHostsFile = knownHostsFile;
  if (fromConfig.connectTimeoutMs !== undefined) hop.connectTimeoutMs = fromConfig.connectTimeoutMs;
  if (fromConfig.serverAliveIntervalMs !== undefined)
    hop.keepaliveIntervalMs = fromConfig.serverAliveIntervalMs;
  return hop;
}
