/**
 * What the live fleet view shows, folded from the core's per-host progress events: one row
 * per host (phase, bytes, rate, ETA, result) and a summary. Plain data and no terminal, so
 * it is tested without one; fleet-view.tsx only draws it.
 */
import type { ProgressEvent } from '../../core/progress.js';
import { TransferMeter } from './transfer-meter.js';

export type HostRowResult = 'waiting' | 'running' | 'ok' | 'failed';

export interface HostRow {
  host: string;
  /** The step running or last settled, e.g. 'transfer' or 'verify.chat'. */
  phase: string;
  bytes: { done: number; total: number } | null;
  bytesPerSecond: number | undefined;
  etaMs: number | undefined;
  result: HostRowResult;
  /** Why a failed host failed (the error code), as the core reported it. */
  detail: string;
}

export class FleetViewState {
  private readonly rowsByHost = new Map<string, HostRow>();
  private readonly meters = new Map<string, TransferMeter>();
  bundle = 'verifying the bundle';

  constructor(
    hosts: readonly string[],
    private readonly now: () => number = Date.now,
  ) {
    for (const host of hosts)
      this.rowsByHost.set(host, {
        host,
        phase: '',
        bytes: null,
        bytesPerSecond: undefined,
        etaMs: undefined,
        result: 'waiting',
        detail: '',
      });
  }

  applyRun(event: ProgressEvent): void {
    if (event.step !== 'verify-bundle') return;
    if (event.status === 'ok') this.bundle = `bundle verified once: ${event.detail ?? ''}`;
    else if (event.status === 'fail') this.bundle = `bundle FAILED verification: ${event.detail ?? ''}`;
    else if (event.bytes) this.bundle = `verifying the bundle: ${percent(event.bytes)}`;
  }

  applyHost(host: string, event: ProgressEvent): void {
    const row = this.rowsByHost.get(host);
    if (!row) return;
    if (event.step === 'host') {
      if (event.status === 'start') row.result = 'running';
      else if (event.status === 'ok') row.result = 'ok';
      else if (event.status === 'fail') {
        row.result = 'failed';
        row.detail = event.detail ?? '';
      }
      return;
    }
    if (event.bytes) {
      let meter = this.meters.get(host);
      if (!meter) {
        meter = new TransferMeter({ now: this.now });
        this.meters.set(host, meter);
      }
      const reading = meter.update(event.bytes);
      row.bytes = { done: reading.done, total: reading.total };
      row.bytesPerSecond = reading.bytesPerSecond;
      row.etaMs = reading.etaMs;
    }
    if (event.status === 'start' || event.status === 'fail') row.phase = event.step;
  }

  rows(): HostRow[] {
    return [...this.rowsByHost.values()];
  }

  summary(): string {
    const rows = this.rows();
    const count = (result: HostRowResult) => rows.filter((r) => r.result === result).length;
    return `${rows.length} hosts: ${count('ok')} ok, ${count('failed')} failed, ${count('running')} running, ${count('waiting')} waiting`;
  }
}

function percent(bytes: { done: number; total: number }): string {
  return bytes.total > 0 ? `${Math.floor((bytes.done * 100) / bytes.total)}%` : '';
}
