/**
 * How commands that act on a host (install, status, rollback, audit verify) name it: the
 * same flags everywhere, turned into the core's InstallTarget in one place.
 */
import type { Command } from 'commander';
import { ApertusError } from '../../core/errors.js';
import type { InstallTarget } from '../../core/target/connect.js';

export interface HostTargetFlags {
  host?: string;
  local?: boolean;
  identity?: string;
  knownHosts?: string;
  acceptNewHostKey?: boolean;
}

/** --host, --local and the SSH flags; `local` says what --local means for this command. */
export function withHostTargetOptions(command: Command, local: string): Command {
  return command
    .option('--host <user@addr[:port]>', 'the host, reached over SSH')
    .option('--local', local)
    .option('-i, --identity <file>', 'SSH private key (default: the SSH agent)')
    .option(
      '--known-hosts <file>',
      'known_hosts file to check the host key against (default ~/.ssh/known_hosts)',
    )
    .option(
      '--accept-new-host-key',
      'trust and record the key of a host seen for the first time (never a changed key)',
    );
}

export function hostTarget(flags: HostTargetFlags): InstallTarget {
  if (flags.host && flags.local) {
    throw new ApertusError('usage', '--host and --local exclude each other.', {
      hint: 'Pass --host USER@ADDR to reach the host over SSH, or --local for this machine.',
    });
  }
  if (flags.local) return { kind: 'local' };
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
  };
}
