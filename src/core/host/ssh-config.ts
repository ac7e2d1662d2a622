/**
 * OpenSSH client configuration (`~/.ssh/config`, or the file `-F` names), read with the
 * `ssh-config` package and resolved for one host the way ssh(1) does, so an alias an
 * operator already uses (`ssh gpu1`) means the same host, user, port, keys, jump hosts and
 * known_hosts to apertus.
 *
 * What ssh_config(5) says and this follows:
 * - "For each parameter, the first obtained value will be used": sections are read top to
 *   bottom and the first `Host` block that matches sets a value; later blocks only fill gaps.
 * - `Host` patterns use `*`, `?` and `!` negation, matched against the name given on the
 *   command line (not the HostName it maps to).
 * - `IdentityFile` may be given several times; "all these identities will be tried in
 *   sequence".
 * - `ProxyJump` holds one or more `[user@]host[:port]` hops "separated by comma characters
 *   [that] will be visited sequentially"; "setting the host to none disables this option".
 * - `ConnectTimeout` is in seconds and covers the TCP connect and the SSH handshake.
 *
 * Not followed, on purpose: `Match exec` (it runs a shell command; the package would run
 * it, we turn it off), `ProxyCommand` (a shell command too; refused with a hint to use
 * ProxyJump), `Include`, `CanonicalizeHostname` and certificate options.
 */
import { readFile } from 'node:fs/promises';
import { homedir, userInfo } from 'node:os';
import path from 'node:path';
import SSHConfig from 'ssh-config';
import { ApertusError } from '../errors.js';

/** What the config says about one host; a field is absent when no matching section sets it. */
export interface SshConfigHost {
  /** The name looked up (the alias on the command line). */
  alias: string;
  /** HostName, with `%h` expanded to the alias. */
  hostName?: string;
  user?: string;
  port?: number;
  /** IdentityFile values in order, `~` and `%d %u %h %r %%` expanded. */
  identityFiles: string[];
  identitiesOnly?: boolean;
  /** ProxyJump hops as written (`[user@]host[:port]`), or 'none' when the config disables it. */
  proxyJump?: string[] | 'none';
  /** UserKnownHostsFile values, expanded; the first is where ssh would add new keys. */
  userKnownHostsFiles: string[];
  connectTimeoutMs?: number;
  serverAliveIntervalMs?: number;
}

/** A parsed config and where it came from (for messages). */
export interface SshConfigFile {
  file: string;
  config: SSHConfig;
}

export function defaultSshConfigFile(): string {
  return path.join(homedir(), '.ssh', 'config');
}

/**
 * Read `file`, or ~/.ssh/config when none is named. A missing default file is an empty
 * config, as for ssh; a missing file the operator named is an error.
 */
export async function loadSshConfig(file?: string): Promise<SshConfigFile> {
  const chosen = file ?? defaultSshConfigFile();
  let text: string;
  try {
    text = await readFile(chosen, 'utf8');
  } catch (error) {
    if (file === undefined && (error as NodeJS.ErrnoException).code === 'ENOENT') {
      return { file: chosen, config: SSHConfig.parse('') };
    }
    throw new ApertusError('ssh-config-unreadable', `Cannot read the SSH config ${chosen}.`, {
      hint: 'Check the path and its permissions, or pass another file with --ssh-config FILE.',
      cause: error,
    });
  }
  return parseSshConfig(chosen, text);
}

export function parseSshConfig(file: string, text: string): SshConfigFile {
  try {
    return { file, config: SSHConfig.parse(text) };
  } catch (error) {
    throw new ApertusError(
      'ssh-config-invalid',
      `Cannot parse the SSH config ${file}: ${(error as Error).message}`,
      {
        hint: `Check it with: ssh -G -F ${file} HOST`,
        cause: error,
      },
    );
  }
}

/** What `ssh -G alias` would take from this config for the options apertus uses. */
export function resolveSshConfigHost(source: SshConfigFile, alias: string): SshConfigHost {
  // ignoreCase: OpenSSH keywords are case-insensitive. matchExec false: never run a shell
  // command from a config file on the operator's behalf.
  const computed = source.config.compute(alias, { ignoreCase: true, matchExec: false });
  const one = (key: string): string | undefined => {
    const value = computed[key];
    return Array.isArray(value) ? value[0] : value;
  };
  const many = (key: string): string[] => {
    const value = computed[key];
    if (value === undefined) return [];
    return Array.isArray(value) ? value : [value];
  };
  const fail = (keyword: string, value: string, why: string): never => {
    throw new ApertusError(
      'ssh-config-invalid',
      `${source.file}: ${keyword} ${JSON.stringify(value)} for host ${alias} ${why}.`,
      { hint: `Fix ${keyword} in ${source.file}; check with: ssh -G -F ${source.file} ${alias}` },
    );
  };

  if (one('proxycommand') !== undefined && one('proxyjump') === undefined) {
    throw new ApertusError(
      'ssh-config-unsupported',
      `${source.file} sets ProxyCommand for ${alias}; apertus does not run proxy commands.`,
      {
        hint: 'Use ProxyJump USER@BASTION in the config, or pass --jump USER@BASTION (ssh -W style proxying is what ProxyJump does).',
      },
    );
  }

  const hostNameRaw = one('hostname');
  const user = one('user');
  const tokens = { alias, user: user ?? localUser() };
  const result: SshConfigHost = {
    alias,
    identityFiles: many('identityfile').map((value) => expandPath(value, tokens)),
    userKnownHostsFiles: many('userknownhostsfile')
      .flatMap((value) => value.split(/\s+/))
      .filter((value) => value !== '')
      .map((value) => expandPath(value, tokens)),
  };
  if (hostNameRaw !== undefined) result.hostName = expandTokens(hostNameRaw, tokens);
  if (user !== undefined) result.user = user;
  const port = one('port');
  if (port !== undefined) {
    if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535)
      fail('Port', port, 'is not 1-65535');
    result.port = Number(port);
  }
  const identitiesOnly = one('identitiesonly');
  if (identitiesOnly !== undefined) result.identitiesOnly = yesNo(identitiesOnly, 'IdentitiesOnly', fail);
  const proxyJump = one('proxyjump');
  if (proxyJump !== undefined) {
    result.proxyJump =
      proxyJump.trim().toLowerCase() === 'none'
        ? 'none'
        : proxyJump
            .split(',')
            .map((hop) => hop.trim())
            .filter((hop) => hop !== '');
  }
  const connectTimeout = one('connecttimeout');
  if (connectTimeout !== undefined) {
    if (!/^\d+$/.test(connectTimeout) || Number(connectTimeout) === 0) {
      fail('ConnectTimeout', connectTimeout, 'is not a number of seconds above 0');
    }
    result.connectTimeoutMs = Number(connectTimeout) * 1000;
  }
  const serverAlive = one('serveraliveinterval');
  if (serverAlive !== undefined) {
    if (!/^\d+$/.test(serverAlive)) fail('ServerAliveInterval', serverAlive, 'is not a number of seconds');
    result.serverAliveIntervalMs = Number(serverAlive) * 1000;
  }
  return result;
}

function yesNo(value: string, keyword: string, fail: (k: string, v: string, why: string) => never): boolean {
  const lower = value.toLowerCase();
  if (lower === 'yes') return true;
  if (lower === 'no') return false;
  return fail(keyword, value, 'is neither yes nor no');
}

interface Tokens {
  alias: string;
  user: string;
}

/**
 * The TOKENS of ssh_config(5) that make sense before connecting: `%%`, `%d` (home), `%u`
 * (local user), `%h` (the host name as given), `%r` (remote user). Others are left as written.
 */
function expandTokens(value: string, tokens: Tokens): string {
  return value.replace(/%([%duhr])/g, (_, token: string) => {
    switch (token) {
      case '%':
        return '%';
      case 'd':
        return homedir();
      case 'u':
        return localUser();
      case 'h':
        return tokens.alias;
      default:
        return tokens.user;
    }
  });
}

/** A file argument: tokens expanded and `~/` the home directory; a relative path is taken from the working directory, as ssh opens it. */
function expandPath(value: string, tokens: Tokens): string {
  const expanded = expandTokens(value, tokens);
  if (expanded === '~' || expanded.startsWith('~/')) return path.join(homedir(), expanded.slice(1));
  return path.resolve(expanded);
}

function localUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? '';
  }
}
