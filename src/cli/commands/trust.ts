import type { Command } from 'commander';
import type { TrustChange, TrustList } from '../../core/operations/trust.js';
import { keyFile } from '../flag-values.js';
import { withExamples } from '../help-text.js';
import { runInterruptible } from '../interrupt.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../output/json-output.js';
import { type HostTargetFlags, hostTarget, withHostTargetOptions } from './host-target.js';

/** A trust change is one small write under the lock: interrupted, it happened or it did not. */
const TRUST_HINT = 'Run `apertus trust list` to see which keys the host trusts, then the command again.';

interface TrustFlags extends HostTargetFlags {
  json?: boolean;
}

export function registerTrust(program: Command, io: CliIO): void {
  const trust = program
    .command('trust')
    .description('The bundle signing keys a host trusts: install refuses bundles none of them signed');
  const withFlags = (command: Command) =>
    withHostTargetOptions(command, { local: 'this machine' }).option('--json', 'print only JSON on stdout');

  const add = withFlags(
    trust
      .command('add')
      .description('Trust a minisign public key on the host (recorded in its audit log)')
      .argument(
        '<key.pub>',
        'the public key file, as `apertus keys generate` writes it',
        keyFile('KEY.pub', 'public'),
      ),
  ).action(async (keyPath: string, flags: TrustFlags) => {
    const { addTrust } = await import('../../core/operations/trust.js');
    const target = await hostTarget(flags, io);
    const change = await runInterruptible(io, TRUST_HINT, (signal) =>
      addTrust({ target, root: flags.root, keyPath, signal }),
    );
    if (flags.json) writeJson(io, change);
    else io.stdout.write(formatChange(change));
  });
  withExamples(add, [
    {
      run: 'trust add keys/release-2027.pub --host root@10.0.0.5',
      does: 'trust a second key (rotation, step 1)',
    },
  ]);

  const remove = withFlags(
    trust
      .command('remove')
      .description('Stop trusting a key (recorded); the last trusted key cannot be removed')
      .argument('<key>', 'the key id, as `apertus trust list` prints it, or its .pub file'),
  ).action(async (key: string, flags: TrustFlags) => {
    const { removeTrust } = await import('../../core/operations/trust.js');
    const target = await hostTarget(flags, io);
    const change = await runInterruptible(io, TRUST_HINT, (signal) =>
      removeTrust({ target, root: flags.root, key, signal }),
    );
    if (flags.json) writeJson(io, change);
    else io.stdout.write(formatChange(change));
  });
  withExamples(remove, [
    {
      run: 'trust remove 91064E1A54F8566E --host root@10.0.0.5',
      does: 'after a bundle signed by the new key is installed (rotation, step 3)',
    },
  ]);

  const list = withFlags(trust.command('list').description('Show the keys the host trusts')).action(
    async (flags: TrustFlags) => {
      const { listTrust } = await import('../../core/operations/trust.js');
      const target = await hostTarget(flags, io);
      const listed = await runInterruptible(io, TRUST_HINT, (signal) =>
        listTrust({ target, root: flags.root, signal }),
      );
      if (flags.json) writeJson(io, listed);
      else io.stdout.write(formatList(listed));
    },
  );
  withExamples(list, [
    { run: 'trust list --host root@10.0.0.5', does: 'the key ids a host installs bundles from' },
  ]);
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
