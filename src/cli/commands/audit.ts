import type { Command } from 'commander';
import type { AuditLogVerification } from '../../core/audit/audit-verify.js';
import { ApertusError } from '../../core/errors.js';
import { DEFAULT_HOST_ROOT, hostLayout } from '../../core/target/layout.js';
import { withExamples } from '../help-text.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../output/json-output.js';
import { chooseRendererMode } from '../output/renderer-mode.js';
import { ReportedFailure } from '../reported-failure.js';
import { type HostTargetFlags, hostPath, hostTarget, withHostTargetOptions } from './host-target.js';

interface AuditVerifyFlags extends HostTargetFlags {
  log?: string;
  installs?: boolean;
  json?: boolean;
}

export function registerAudit(program: Command, io: CliIO): void {
  const audit = program
    .command('audit')
    .description("Check a host's tamper-evident audit logs: the RAG service's requests, or the installs");
  const verify = withHostTargetOptions(
    audit
      .command('verify')
      .description('Verify the hash chain of the audit log on a host; name the first broken record'),
    { local: 'this machine' },
  )
    .option(
      '--log <path>',
      'the audit log on the host (default <root>/data/rag/audit.log)',
      hostPath('--log'),
    )
    .option('--installs', 'verify the log of installs, <root>/audit.log, instead of the RAG log')
    .option('--json', 'print only the JSON result on stdout')
    .action(async (flags: AuditVerifyFlags) => {
      const target = hostTarget(flags);
      if (flags.installs && flags.log) {
        throw new ApertusError('usage', '--installs and --log exclude each other.', {
          hint: 'Pass --installs for <root>/audit.log, or --log PATH for any other log.',
        });
      }
      const logPath = flags.installs ? hostLayout(flags.root ?? DEFAULT_HOST_ROOT).auditLog : flags.log;
      const [{ auditVerify }, { runSteps }] = await Promise.all([
        import('../../core/audit/audit-verify.js'),
        import('../output/run-steps.js'),
      ]);
      const result = await runSteps(
        io,
        chooseRendererMode(io, flags),
        [{ id: 'audit.read', title: 'Verify audit log' }],
        (onProgress) => auditVerify({ target, root: flags.root, logPath, onProgress }),
      );
      if (flags.json) writeJson(io, result);
      else io.stdout.write(formatAuditVerification(result));
      if (!result.ok) throw new ReportedFailure();
    });
  withExamples(verify, [
    { run: 'audit verify --host root@10.0.0.5', does: "the RAG service's request log" },
    { run: 'audit verify --host root@10.0.0.5 --installs', does: 'the log of installs and rollbacks' },
  ]);
}

export function formatAuditVerification(result: AuditLogVerification): string {
  const where = `${result.logPath} on ${result.host}`;
  const pending =
    result.pendingTailBytes > 0
      ? ` (${result.pendingTailBytes} bytes of a record being written were left for the next run)`
      : '';
  if (result.ok) {
    return result.records === 0
      ? `ok: ${where} holds no records yet${pending}\n`
      : `ok: ${result.records} records, chain intact from seq 1 to ${result.lastSeq} (last hash ${result.lastHash}) in ${where}${pending}\n`;
  }
  const broken = result.firstBroken;
  const record = broken?.seq === null || broken === undefined ? 'an unreadable record' : `seq ${broken.seq}`;
  return [
    `BROKEN: ${where}`,
    `  first broken record: line ${broken?.line}, ${record}: ${broken?.reason}`,
    `  ${broken?.detail}`,
    `  ${result.records} records before it verify${result.lastSeq === null ? '' : ` (seq 1 to ${result.lastSeq})`}`,
    '',
  ].join('\n');
}
