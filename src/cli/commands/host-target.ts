/**
 * How commands that act on a host (check, install, status, rollback, audit verify) name it:
 * the same flags everywhere, each value checked as it enters, and turned into the core's
 * InstallTarget in one place.
 */
import { posix } from 'node:path';
import type { Command } from 'commander';
import { ApertusError } from '../../core/errors.js';
import { parseHostAddress } from '../../core/host/host-address.js';
import { parseJumpList } from '../../core/host/jump-list.js';
import type { InstallTarget } from '../../core/target/connect.js';
import { DEFAULT_HOST_ROOT } from '../../core/target/layout.js';
import { becomeOptions } from '../become-password.js';
import { existingFile, fileOrCreatable, type ValueParser } from '../flag-values.js';
import type { CliIO } from '../io.js';

export interface HostTargetFlags {
  host?: string;
  local?: boolean;
  identity?: string;
  knownHosts?: string;
  acceptNewHostKey?: boolean;
  root?: string;
  jump?: string;
  sshConfig?: string;
  become?: boolean;
  json?: boolean;
}

export interface HostTargetOptions {
  /** What --local means for this command. */
  local: string;
  /**
   * 'default': --root defaults to DEFAULT_HOST_ROOT. 'per-host': no default, since an
   * inventory names a root per host (check).
   */
  root?: 'default' | 'per-host';
}

/** --host, --local, the SSH flags and --root. */
export function withHostTargetOptions(command: Command, options: HostTargetOptions): Command {
  command
    .option(
      '--host <user@addr[:port]>',
      'the host, reached over SSH (an ssh_config alias works)',
      hostAddress,
    )
    .option('--local', options.local)
    .option(
      '-i, --identity <file>',
      'SSH private key (default: the SSH agent)',
      existingFile({
        flag: '--identity',
        what: 'SSH identity',
        code: 'identity-unreadable',
        hint: 'Pass the private key file (e.g. ~/.ssh/id_ed25519), or leave --identity out to use the SSH agent.',
      }),
    )
    .option(
      '--known-hosts <file>',
      'known_hosts file to check the host key against (default ~/.ssh/known_hosts)',
      fileOrCreatable({
        flag: '--known-hosts',
        what: 'known_hosts file',
        code: 'known-hosts-unusable',
        hint: 'Pass a known_hosts file, or a path where --accept-new-host-key may create one.',
      }),
    )
    .option(
      '--accept-new-host-key',
      'trust and record the key of a host seen for the first time (never a changed key)',
    )
    .option(
      '--jump <user@host[:port],...>',
      'reach the host through these jump hosts, in order (as ssh -J; beats ProxyJump; none: no jump)',
      jumpList,
    )
    .option(
      '-F, --ssh-config <file>',
      'OpenSSH client config to read (default ~/.ssh/config; none: read none)',
      sshConfigFile,
    )
    .option(
      '--become',
      'log in as a user that is not root and run every command through sudo (password: APERTUS_BECOME_PASSWORD, or asked on a terminal)',
    );
  return options.root === 'per-host'
    ? command.option(
        '--root <dir>',
        `install root on the host (default ${DEFAULT_HOST_ROOT}; in an inventory, root: per host)`,
        hostRoot,
      )
    : command.option('--root <dir>', 'install root on the host', hostRoot, DEFAULT_HOST_ROOT);
}

/** The target the flags name; with --become, the sudo password is read (or asked for) now, before any step. */
export async function hostTarget(flags: HostTargetFlags, io: CliIO): Promise<InstallTarget> {
  const become = flags.become ? { become: await becomeOptions(io, flags) } : {};
  return { ...hostTargetOf(flags), ...become };
}

function hostTargetOf(flags: HostTargetFlags): InstallTarget {
  if (flags.host && flags.local) {
    throw new ApertusError('usage', '--host and --local exclude each other.', {
      hint: 'Pass --host USER@ADDR to reach the host over SSH, or --local for this machine.',
    });
  }
  if (flags.local) {
    const ssh = [flags.jump && '--jump', flags.sshConfig && '--ssh-config'].filter(Boolean);
    if (ssh.length > 0) {
      throw new ApertusError('usage', `${ssh.join(' and ')} cannot be combined with --local.`, {
        hint: 'Leave them out for this machine, or pass --host USER@ADDR to reach a host over SSH.',
      });
    }
    return { kind: 'local' };
  }
  if (!flags.host) {
    throw new ApertusError('usage', 'No target host.', {
      hint: 'Pass --host USER@ADDR[:PORT] (SSH) or --local (this machine).',
    });
  }
  return {
    kind: 'ssh',
    address: flags.host,
    identityFile: flags.identity,
    knownHostsFile: flags.knownHosts,
    acceptNewHostKey: flags.acceptNewHostKey,
    jump: flags.jump,
    sshConfigFile: flags.sshConfig,
  };
}

/** `--jump`: checked now, so a typo fails before anything else starts; the core parses it again. */
const jumpList: ValueParser<string> = (value) => {
  parseJumpList(value);
  return value;
};

const existingSshConfig = existingFile({
  flag: '--ssh-config',
  what: 'SSH config',
  code: 'ssh-config-unreadable',
  hint: 'Pass an OpenSSH client config (e.g. ~/.ssh/config), or none to read none.',
});

const sshConfigFile: ValueParser<string> = (value) => (value === 'none' ? value : existingSshConfig(value));

/** `--host`: checked now, so a typo fails before anything else starts; the core parses it again. */
const hostAddress: ValueParser<string> = (value) => {
  parseHostAddress(value);
  return value;
};

/**
 * A path on the host as a flag gives it (`--log`): absolute (a host has no working directory
 * of ours), already normal (no `.`, `..`, `//` or trailing `/` for a shell or a later join to
 * read differently) and free of control characters.
 */
export function hostPath(flag: string): ValueParser<string> {
  return (value) => {
    const problem = hostPathProblem(value);
    if (problem !== undefined) throw hostPathError(flag, value, problem.why, problem.suggestion);
    return value;
  };
}

/** `--root`: a host path, and not `/` itself, where releases and blobs would mix with the system. */
export const hostRoot: ValueParser<string> = (value) => {
  hostPath('--root')(value);
  if (value === '/') {
    throw hostPathError(
      '--root',
      value,
      "is the host's / itself; apertus keeps its releases, blobs and audit log in a directory of their own",
      DEFAULT_HOST_ROOT,
    );
  }
  return value;
};

function hostPathProblem(value: string): { why: string; suggestion?: string } | undefined {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(value)) return { why: 'contains a control character' };
  if (!value.startsWith('/')) return { why: 'is relative; a path on the host starts with /' };
  const segments = value.split('/');
  if (segments.includes('..')) return { why: "contains '..'" };
  const normal = posix.normalize(value).replace(/(.)\/$/, '$1');
  if (normal !== value) return { why: 'is not in normal form', suggestion: normal };
  return undefined;
}

function hostPathError(flag: string, value: string, why: string, suggestion?: string): ApertusError {
  return new ApertusError('usage', `${flag} ${JSON.stringify(value)} ${why}.`, {
    hint: `Pass ${flag} an absolute path on the host, e.g. ${flag} ${suggestion ?? DEFAULT_HOST_ROOT}.`,
  });
}
