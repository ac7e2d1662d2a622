import { describe, expect, it } from 'vitest';
import { FleetViewState } from '../../src/cli/output/fleet-view-state.js';

describe('the live fleet view state', () => {
  it('folds per-host events into phase, bytes, rate, ETA and result rows and a summary', () => {
    let now = 0;
    const state = new FleetViewState(['gpu-01', 'gpu-02', 'gpu-03'], () => now);
    state.applyRun({ step: 'verify-bundle', status: 'ok', detail: 'checksums ok; not signed' });
    state.applyHost('gpu-01', { step: 'host', status: 'start' });
    state.applyHost('gpu-01', { step: 'transfer', status: 'start' });
    state.applyHost('gpu-01', { step: 'transfer', status: 'info', bytes: { done: 0, total: 4000 } });
    now = 2000;
    state.applyHost('gpu-01', { step: 'transfer', status: 'info', bytes: { done: 2000, total: 4000 } });
    state.applyHost('gpu-02', { step: 'host', status: 'start' });
    state.applyHost('gpu-02', { step: 'host', status: 'fail', detail: 'host-connection-refused' });
    state.applyHost('nobody', { step: 'host', status: 'start' });

    expect(state.bundle).toBe('bundle verified once: checksums ok; not signed');
    const [one, two, three] = state.rows();
    expect(one).toMatchObject({
      host: 'gpu-01',
      phase: 'transfer',
      bytes: { done: 2000, total: 4000 },
      bytesPerSecond: 1000,
      etaMs: 2000,
      result: 'running',
    });
    expect(two).toMatchObject({ result: 'failed', detail: 'host-connection-refused' });
    expect(three).toMatchObject({ result: 'waiting', phase: '', bytes: null });
    expect(state.summary()).toBe('3 hosts: 0 ok, 1 failed, 1 running, 1 waiting');
  });
});
