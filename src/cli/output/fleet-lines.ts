/**
 * A fleet run off a TTY (and on one, until a live view draws it): one plain line per host
 * step that settles, tagged with the host, on stderr; then a table of hosts and a summary
 * line on stdout. Byte-level progress is left out: with many hosts it would drown the log.
 */
import type { FleetOutcomeReport } from '../../core/operations/fleet-hosts.js';
import type { FleetInstallReport } from '../../core/operations/fleet-install.js';
import type { ProgressEvent } from '../../core/progress.js';
import type { CliIO } from '../io.js';
import { formatDuration, formatTable } from './format.js';

export interface FleetProgressLines {
  /** Run-level steps (the one bundle verification). */
  run(event: ProgressEvent): void;
  host(host: string, event: ProgressEvent): void;
}

const SHOWN = new Set(['ok', 'fail']);

export function fleetProgressLines(io: CliIO): FleetProgressLines {
  const line = (who: string, event: ProgressEvent) =>
    io.stderr.write(
      `${who}  ${event.step} ${event.status === 'ok' ? 'ok' : 'FAILED'}${event.detail ? `: ${event.detail}` : ''}\n`,
    );
  return {
    run(event) {
      if (SHOWN.has(event.status) && event.bytes === undefined) line('bundle', event);
    },
    host(host, event) {
      if (event.step === 'host' && event.status === 'start')
        io.stderr.write(`${host}  started (${event.detail ?? ''})\n`);
      else if (SHOWN.has(event.status) && event.bytes === undefined) line(host, event);
    },
  };
}

const STATUS: Record<string, string> = { ok: 'ok', failed: 'FAILED', 'not-started': 'not started' };

export function formatFleetInstallReport(report: FleetInstallReport): string {
  const rows = report.hosts.map((h) => [
    h.host,
    h.batch === null ? '-' : String(h.batch),
    STATUS[h.status] ?? h.status,
    h.ms === null ? '' : formatDuration(h.ms),
    h.status === 'failed'
      ? `${h.error?.code ?? ''}${h.rollback ? `; rolled back to ${h.rollback.to ?? 'nothing'}${h.rollback.healthy ? '' : ' (NOT answering)'}` : ''}`
      : h.status === 'ok' && h.report && 'release' in h.report
        ? h.report.release.dir
        : '',
  ]);
  const { summary } = report;
  const stopped =
    summary.stoppedBy === 'max-fail'
      ? `; stopped: failures over --max-fail ${report.maxFailPercent}%`
      : summary.stoppedBy === 'interrupted'
        ? '; interrupted'
        : '';
  return `${[
    `${report.dryRun ? 'Planned' : 'Installed'} ${report.bundle.name} ${report.bundle.version} on ${summary.hosts} hosts in ${report.batches.length} batches`,
    '',
    formatTable(['HOST', 'BATCH', 'RESULT', 'TIME', 'DETAIL'], rows),
    '',
    `${summary.hosts} hosts: ${summary.ok} ok, ${summary.failed} failed (${summary.rolledBack} rolled back), ${summary.notStarted} not started${stopped}`,
  ].join('\n')}\n`;
}

/** A day-two command on many hosts: each host's own text under its name, then a summary line. */
export function formatFleetOutcomes<T extends { ok: boolean }>(
  report: FleetOutcomeReport<T>,
  formatOne: (result: T) => string,
): string {
  const sections = report.hosts.map((h) => {
    const head = `== ${h.host} (${h.address}): ${h.ok ? 'ok' : 'FAILED'}`;
    const error = h.error
      ? `error[${h.error.code}]: ${h.error.message}\n${h.error.hint ? `hint: ${h.error.hint}\n` : ''}`
      : '';
    const body = `${h.result ? formatOne(h.result) : ''}${error}`;
    return `${head}\n${body}`;
  });
  const { summary } = report;
  return `${sections.join('\n')}\n${summary.hosts} hosts: ${summary.ok} ok, ${summary.failed} failed\n`;
}
