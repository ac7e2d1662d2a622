import type { Command } from 'commander';
import type { AuditLogVerification } from '../../core/audit/audit-verify.js';
import { ApertusError } from '../../core/errors.js';
import type { FleetHost } from '../../core/operations/fleet-hosts.js';
import type { InstallLogVerification } from '../../core/operations/verify-install-log.js';
import { withExamples } from '../help-text.js';
import { runInterruptible } from '../interrupt.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../output/json-output.js';
import { chooseRendererMode } from '../output/renderer-mode.js';
import { ReportedFailure } from '../reported-failure.js';
import { runOnFleet } from './fleet-command.js';
import { hostPath, hostTarget, withHostTargetOptions } from './host-target.js';
import { type InventoryFlags, inventoryTargetsOf, withInventoryOptions } from './inventory-flags.js';

/** Verifying reads only. */
const AUDIT_HINT = 'Nothing was changed on the host; run the verification again.';

interface AuditVerifyFlags extends InventoryFlags {
  log?: string;
  installs?: boolean;
  json?: boolean;
}

export function registerAudit(program: Command, io: CliIO): void {
  const audit = program
    .command('audit')
    .description("Check a host's tamper-evident audit logs: the RAG service's requests, or the installs");
  const verify = withInventoryOptions(
    withHostTargetOptions(
      audit
        .command('verify')
        .description(
          "Verify the hash chain of an audit log on a host, and the RAG log's signed checkpoints (or, with --installs, the log of installs: signatures, anchors, reports); name the first broken record or the records gone",
        ),
      { local: 'this machine', root: 'per-host' },
    ),
    'verify on',
  )
    .option(
      '--log <path>',
      'the audit log on the host (default <root>/data/rag/audit.log)',
      hostPath('--log'),
    )
    .option('--installs', 'verify the log of installs, <root>/audit.log, instead of the RAG log')
    .option('--json', 'print only the JSON result on stdout')
    .action(async (flags: AuditVerifyFlags) => {
      if (flags.installs && flags.log) {
        throw new ApertusError('usage', '--installs and --log exclude each other.', {
          hint: 'Pass --installs for <root>/audit.log, or --log PATH for any other log.',
        });
      }
      const fleet = await inventoryTargetsOf(flags, io);
      if (fleet) {
        await verifyFleet(io, fleet, flags);
        return;
      }
      const target = await hostTarget(flags, io);
      const { runSteps } = await import('../output/run-steps.js');
      if (flags.installs) {
        const { verifyInstallLog } = await import('../../core/operations/verify-install-log.js');
        const result = await runSteps(
          io,
          chooseRendererMode(io, flags),
          [{ id: 'audit.read', title: 'Verify the log of installs' }],
          (onProgress) =>
            runInterruptible(io, AUDIT_HINT, (signal) =>
              verifyInstallLog({ target, root: flags.root, signal, onProgress }),
            ),
        );
        if (flags.json) writeJson(io, result);
        else io.stdout.write(formatInstallLogVerification(result));
        if (!result.ok) throw new ReportedFailure();
        return;
      }
      const { auditVerify } = await import('../../core/audit/audit-verify.js');
      const result = await runSteps(
        io,
        chooseRendererMode(io, flags),
        [{ id: 'audit.read', title: 'Verify audit log' }],
        (onProgress) =>
          runInterruptible(io, AUDIT_HINT, (signal) =>
            auditVerify({ target, root: flags.root, logPath: flags.log, signal, onProgress }),
          ),
      );
      if (flags.json) writeJson(io, result);
      else io.stdout.write(formatAuditVerification(result));
      if (!result.ok) throw new ReportedFailure();
    });
  withExamples(verify, [
    { run: 'audit verify --host root@10.0.0.5', does: "the RAG service's request log" },
    { run: 'audit verify --host root@10.0.0.5 --installs', does: 'the log of installs and rollbacks' },
    {
      run: 'audit verify --inventory hosts.yaml --installs',
      does: 'every host of the inventory, with a summary',
    },
  ]);
}

/** One verification per host of the inventory, 5 at a time; a host that cannot be read is its own failure. */
async function verifyFleet(io: CliIO, fleet: readonly FleetHost[], flags: AuditVerifyFlags): Promise<void> {
  await runOnFleet(
    io,
    fleet,
    {
      json: flags.json,
      hint: AUDIT_HINT,
      format: (result) =>
        'signed' in result
          ? formatInstallLogVerification(result as InstallLogVerification)
          : formatAuditVerification(result as AuditLogVerification),
    },
    async (host, signal, onProgress) => {
      if (flags.installs) {
        const { verifyInstallLog } = await import('../../core/operations/verify-install-log.js');
        return verifyInstallLog({ target: host.target, root: host.root, signal, onProgress });
      }
      const { auditVerify } = await import('../../core/audit/audit-verify.js');
      return auditVerify({ target: host.target, root: host.root, logPath: flags.log, signal, onProgress });
    },
  );
}

export function formatAuditVerification(result: AuditLogVerification): string {
  const where = `${result.logPath} on ${result.host}`;
  const pending =
    result.pendingTailBytes > 0
      ? ` (${result.pendingTailBytes} bytes of a record being written were left for the next run)`
      : '';
  const checkpoints = result.checkpoints;
  const anchoring = checkpoints === undefined ? [] : [`  checkpoints: ${checkpoints.detail}`];
  const bad = (checkpoints?.problems ?? []).map(
    (p) => `  checkpoint line ${p.line}: ${p.reason}: ${p.detail}`,
  );
  if (result.ok) {
    const chain =
      result.records === 0
        ? `ok: ${where} holds no records yet${pending}`
        : `ok: ${result.records} records, chain intact from seq 1 to ${result.lastSeq} (last hash ${result.lastHash}) in ${where}${pending}`;
    return [chain, ...anchoring, ''].join('\n');
  }
  const broken = result.firstBroken;
  if (broken === undefined) {
    // The chain verifies, but not against its checkpoints.
    const chain =
      result.records === 0
        ? '  the log holds no records'
        : `  the chain verifies from seq 1 to ${result.lastSeq} (${result.records} records), but:`;
    return [`FAILED (checkpoints: ${checkpoints?.status}): ${where}`, chain, ...anchoring, ...bad, ''].join(
      '\n',
    );
  }
  const record = broken.seq === null ? 'an unreadable record' : `seq ${broken.seq}`;
  return [
    `BROKEN: ${where}`,
    `  first broken record: line ${broken.line}, ${record}: ${broken.reason}`,
    `  ${broken.detail}`,
    `  ${result.records} records before it verify${result.lastSeq === null ? '' : ` (seq 1 to ${result.lastSeq})`}`,
    ...anchoring,
    ...bad,
    '',
  ].join('\n');
}

export function formatInstallLogVerification(result: InstallLogVerification): string {
  const chain = formatAuditVerification(result);
  if (!result.ok && result.problems.length === 0) return chain;
  const lines = [
    result.ok ? chain.trimEnd() : `BROKEN: ${result.logPath} on ${result.host}`,
    `  ${result.signed} records signed by the host key, ${result.unsigned} unsigned; ${result.reports.checked} reports checked`,
    ...(result.anchor
      ? [`  anchored at seq ${result.anchor.seq} by state.json`]
      : ['  no anchor in state.json']),
    ...result.problems.map((p) => `  ${p.kind}: ${p.detail}`),
  ];
  if (!result.ok && result.firstBroken) lines.push(chain.trimEnd().split('\n').slice(1).join('\n'));
  return `${lines.join('\n')}\n`;
}
