import type { Command } from 'commander';
import type { HostStatus } from '../../core/operations/status.js';
import { withExamples } from '../help-text.js';
import { runInterruptible } from '../interrupt.js';
import type { CliIO } from '../io.js';
import { formatFleetOutcomes } from '../output/fleet-lines.js';
import { formatBytes, formatTable } from '../output/format.js';
import { writeJson } from '../output/json-output.js';
import { ReportedFailure } from '../reported-failure.js';
import { hostTarget, withHostTargetOptions } from './host-target.js';
import { type InventoryFlags, inventoryTargetsOf, withInventoryOptions } from './inventory-flags.js';

interface StatusFlags extends InventoryFlags {
  json?: boolean;
}

export function registerStatus(program: Command, io: CliIO): void {
  const command = withInventoryOptions(
    withHostTargetOptions(
      program
        .command('status')
        .description(
          'Show what a host runs: current and previous release (verified, signed by), releases on disk, service health, blob store, trusted keys, audit anchors, lock; and what to act on',
        ),
      { local: 'this machine', root: 'per-host' },
    ),
    'show',
  )
    .option('--json', 'print only the JSON status on stdout')
    .action(async (flags: StatusFlags) => {
      const { hostStatus } = await import('../../core/operations/status.js');
      const fleet = await inventoryTargetsOf(flags, io);
      if (fleet) {
        const { onEveryHost } = await import('../../core/operations/fleet-hosts.js');
        const report = await runInterruptible(
          io,
          'Nothing was changed on any host; run the command again.',
          (signal) =>
            onEveryHost(
              fleet,
              5,
              (host) => hostStatus({ target: host.target, root: host.root, signal }),
              signal,
            ),
        );
        if (flags.json) writeJson(io, report);
        else io.stdout.write(formatFleetOutcomes(report, formatHostStatus));
        if (!report.ok) throw new ReportedFailure();
        return;
      }
      const target = await hostTarget(flags, io);
      const result = await runInterruptible(
        io,
        'Nothing was changed on the host; run the command again.',
        (signal) => hostStatus({ target, root: flags.root, signal }),
      );
      if (flags.json) writeJson(io, result);
      else io.stdout.write(formatHostStatus(result));
      // A service of the current release that does not answer is a failure scripts must see.
      if (!result.ok) throw new ReportedFailure();
    });
  withExamples(command, [
    { run: 'status --host root@10.0.0.5', does: 'what runs there, and whether it answers now' },
    { run: 'status --local --root /srv/apertus --json', does: 'this machine, another root, as JSON' },
    { run: 'status --inventory hosts.yaml --limit rack-a', does: 'every host of a group, one section each' },
  ]);
}

export function formatHostStatus(status: HostStatus): string {
  const where = `${status.root} on ${status.host}`;
  const lines: string[] = [];
  if (!status.current) {
    lines.push(`Nothing installed: no current release under ${where}.`);
  } else {
    const c = status.current;
    lines.push(
      `${c.name} ${c.version} is current under ${where}${c.verified ? '' : ' (NOT VERIFIED)'}`,
      `  manifest  ${c.manifestDigest}`,
      `  signed    ${c.signer ? `by key ${c.signer.keyId} (${c.signer.trustedComment})` : 'not known to be signed'}`,
      `  since     ${c.since ?? `staged ${c.stagedAt}`}`,
      ...(c.report ? [`  report    ${c.report}`] : []),
    );
  }
  if (status.previous) {
    lines.push(
      `  previous  ${status.previous.release}${status.previous.present ? ' (apertus rollback returns to it)' : ' (no longer on disk)'}`,
    );
  }
  if (status.services.length > 0) {
    lines.push(
      '',
      formatTable(
        ['SERVICE', 'RUNTIME', 'PORT', 'HEALTH', 'DETAIL'],
        status.services.map((s) => [
          s.name,
          s.runtime,
          String(s.port),
          s.health === 'ok' ? 'ok' : 'DOWN',
          s.detail,
        ]),
      ),
    );
  }
  if (status.releases.length > 0) {
    lines.push(
      '',
      formatTable(
        ['RELEASE', 'VERSION', 'DISK', ''],
        status.releases.map((r) => [r.name, r.version, formatBytes(r.diskBytes), r.current ? 'current' : '']),
      ),
    );
  }
  lines.push(
    '',
    `blobs     ${status.blobs.count} in the store, ${formatBytes(status.blobs.diskBytes)}`,
    `audit     ${
      status.lastAudit
        ? `last record seq ${status.lastAudit.seq}: ${status.lastAudit.method} ${status.lastAudit.endpoint} status ${status.lastAudit.status} at ${status.lastAudit.time}${status.lastAudit.sound ? '' : ' (its hash does NOT match: run apertus audit verify --installs)'}`
        : 'no install records'
    }`,
    `trust     ${status.trust.mode === 'keys' ? `bundles signed by ${status.trust.keys.join(', ')}` : status.trust.mode === 'unsigned' ? 'UNSIGNED bundles (--allow-unsigned)' : 'no key yet (the first install names one with --trust-key)'}`,
    `lock      ${status.lock.held ? `${status.lock.stale ? 'STALE, ' : 'HELD by '}${status.lock.description ?? 'an unknown holder'}` : 'free'}`,
    ...status.warnings.map((w) => `WARNING   ${w}`),
  );
  return `${lines.join('\n')}\n`;
}
