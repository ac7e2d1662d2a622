import type { Command } from 'commander';
import {
  addTrust,
  listTrust,
  removeTrust,
  type TrustChange,
  type TrustList,
} from '../../core/operations/trust.js';
import { DEFAULT_HOST_ROOT } from '../../core/target/layout.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../output/json-output.js';
import { type HostTargetFlags, hostTarget, withHostTargetOptions } from './host-target.js';

interface TrustFlags extends HostTargetFlags {
  root?: string;
  json?: boolean;
}

export function registerTrust(program: Command, io: CliIO): void {
  const trust = program
    .command('trust')
    .description('The bundle signing keys a host trusts: install refuses bundles none of them signed');
  const withFlags = (command: Command) =>
    withHostTargetOptions(command, 'this machine')
      .option('--root <dir>', 'install root on the host', DEFAULT_HOST_ROOT)
      .option('--json', 'print only JSON on stdout');

  withFlags(
    trust
      .command('add')
      .description('Trust a minisign public key on the host (recorded in its audit log)')
      .argument('<key.pub>', 'the public key file, as `apertus keys generate` writes it'),
  ).action(async (keyPath: string, flags: TrustFlags) => {
    const change = await addTrust({ target: hostTarget(flags), root: flags.root, keyPath });
    if (flags.json) writeJson(io, change);
    else io.stdout.write(formatChange(change));
  });

  withFlags(
    trust
      .command('remove')
      .description('Stop trusting a key (recorded); the last trusted key cannot be removed')
      .argument('<key>', 'the key id, as `apertus trust list` prints it, or its .pub file'),
  ).action(async (key: string, flags: TrustFlags) => {
    const change = await removeTrust({ target: hostTarget(flags), root: flags.root, key });
    if (flags.json) writeJson(io, change);
    else io.stdout.write(formatChange(change));
  });

  withFlags(trust.command('list').description('Show the keys the host trusts')).action(
    async (flags: TrustFlags) => {
      const list = await listTrust({ target: hostTarget(flags), root: flags.root });
      if (flags.json) writeJson(io, list);
      else io.stdout.write(formatList(list));
    },
  );
}

function formatChange(change: TrustChange): string {
  const verb = change.action === 'add' ? 'trusts' : 'no longer trusts';
  const head = change.changed
    ? `${change.host} ${verb} key ${change.keyId}`
    : `${change.host} ${change.action === 'add' ? 'already trusts' : 'does not trust'} key ${change.keyId}: nothing changed`;
  return [
    head,
    `  trusted   ${change.keys.length > 0 ? change.keys.join(', ') : 'none'}`,
    ...(change.report ? [`  report    ${change.report} (audit record ${change.record?.seq})`] : []),
    '',
  ].join('\n');
}

function formatList(list: TrustList): string {
  if (list.keys.length === 0) {
    return list.mode === 'unsigned'
      ? `${list.root} on ${list.host} trusts no key and installs UNSIGNED bundles (its first install had --allow-unsigned)\n`
      : `${list.root} on ${list.host} trusts no key yet: the first install names one with --trust-key\n`;
  }
  return [
    `${list.root} on ${list.host} installs bundles signed by:`,
    ...list.keys.map((k) => `  ${k.keyId}  ${k.path}`),
    '',
  ].join('\n');
}
