/**
 * `--inventory FILE` and `--limit PATTERN`, declared once for every command that acts on
 * many hosts (check, install, status, rollback, uninstall, prune, eval, audit verify), with
 * the same rules everywhere: the inventory excludes --host and --local, the per-host SSH
 * flags live in the inventory, and --limit means nothing without one. --become applies to
 * every host; `become: true` in the inventory to the hosts that have it.
 */
import type { Command } from 'commander';
import { ApertusError } from '../../core/errors.js';
import type { CheckTarget } from '../../core/operations/check.js';
import { becomeOptions } from '../become-password.js';
import { existingFile } from '../flag-values.js';
import type { CliIO } from '../io.js';
import type { HostTargetFlags } from './host-target.js';

export interface InventoryFlags extends HostTargetFlags {
  inventory?: string;
  limit?: string;
}

export function withInventoryOptions(command: Command, what: string): Command {
  return command
    .option(
      '--inventory <file>',
      `${what} every host of an inventory YAML file`,
      existingFile({
        flag: '--inventory',
        what: 'inventory',
        code: 'inventory-not-found',
        hint: 'Pass the path of a YAML file listing the hosts (apiVersion: apertus.dev/v1, kind: Inventory).',
      }),
    )
    .option(
      '--limit <pattern>',
      'with --inventory: only these hosts (names, groups, all, globs like gpu-*; comma-separated; !NAME excludes)',
    );
}

/**
 * The inventory's hosts that --limit selects, or undefined without --inventory. `root` is
 * 'flag-default' where the command gives --root a default (so it cannot tell a given
 * --root from the default) and the inventory's root wins anyway.
 */
export async function inventoryTargetsOf(
  flags: InventoryFlags,
  io: CliIO,
): Promise<CheckTarget[] | undefined> {
  if (!flags.inventory) {
    if (flags.limit !== undefined)
      throw new ApertusError('usage', '--limit selects hosts of an inventory; there is none.', {
        hint: 'Pass --inventory FILE with --limit, or name the one host with --host.',
      });
    return undefined;
  }
  const other = [flags.host && '--host', flags.local && '--local'].filter(Boolean);
  if (other.length > 0)
    throw new ApertusError('usage', `--inventory and ${other.join(' and ')} exclude each other.`, {
      hint: 'Pass --inventory FILE (with --limit PATTERN to pick hosts), or one host with --host USER@ADDR.',
    });
  const ssh = [
    flags.identity && '--identity',
    flags.knownHosts && '--known-hosts',
    flags.root && '--root',
    flags.jump && '--jump',
  ].filter(Boolean);
  if (ssh.length > 0)
    throw new ApertusError('usage', `${ssh.join(', ')} cannot be combined with --inventory.`, {
      hint: 'Set user, port, identity, knownHosts, jump and root in the inventory (per host, or under defaults:).',
    });
  const { inventoryTargets, loadInventory, selectHosts } = await import('../../core/spec/inventory.js');
  const targets = inventoryTargets(selectHosts(await loadInventory(flags.inventory), flags.limit));
  if (flags.acceptNewHostKey) {
    for (const t of targets) if (t.target.kind === 'ssh') t.target.acceptNewHostKey = true;
  }
  if (flags.sshConfig) {
    for (const t of targets) if (t.target.kind === 'ssh') t.target.sshConfigFile = flags.sshConfig;
  }
  // --become for every host, or the inventory's become: true for some: one password, asked once.
  if (flags.become) for (const t of targets) t.target.become = {};
  if (targets.some((t) => t.target.become)) {
    const become = await becomeOptions(io, flags);
    for (const t of targets) if (t.target.become) t.target.become = become;
  }
  return targets;
}
