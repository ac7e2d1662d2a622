/**
 * Rate, ETA and the progress lines of downloads, on a fake clock: no test here waits.
 */
import { describe, expect, it } from 'vitest';
import { formatTransfer, TransferLines } from '../../src/cli/output/transfer-lines.js';
import { formatEta, TransferMeter } from '../../src/cli/output/transfer-meter.js';
import type { ProgressEvent } from '../../src/core/progress.js';

function fakeClock(start = 1_000_000) {
  const clock = { now: start, tick: (ms: number) => (clock.now += ms) };
  return clock;
}

const MB = 1_000_000;

describe('TransferMeter', () => {
  it('gives no rate until the samples span a second, then bytes per second and the time left', () => {
    const clock = fakeClock();
    const meter = new TransferMeter({ now: () => clock.now });
    const total = 1000 * MB;
    expect(meter.update({ done: 0, total, received: 0 })).toEqual({
      done: 0,
      total,
      bytesPerSecond: undefined,
      etaMs: undefined,
    });
    clock.tick(500);
    expect(meter.update({ done: 50 * MB, total, received: 50 * MB }).bytesPerSecond).toBeUndefined();
    // 100 MB/s for 4 s.
    for (let second = 1; second <= 4; second++) {
      clock.tick(second === 1 ? 500 : 1000);
      const reading = meter.update({ done: second * 100 * MB, total, received: second * 100 * MB });
      expect(reading.bytesPerSecond).toBeCloseTo(100 * MB, 0);
      expect(reading.etaMs).toBeCloseTo(((total - second * 100 * MB) / (100 * MB)) * 1000, 0);
    }
  });

  it('counts only received bytes towards the rate: a cache hit is not a fast network', () => {
    const clock = fakeClock();
    const meter = new TransferMeter({ now: () => clock.now });
    const total = 1000 * MB;
    meter.update({ done: 0, total, received: 0 });
    clock.tick(1000);
    // 600 MB came from the cache, 10 MB over the network.
    const reading = meter.update({ done: 610 * MB, total, received: 10 * MB });
    expect(reading.bytesPerSecond).toBeCloseTo(10 * MB, 0);
    expect(reading.etaMs).toBeCloseTo((390 / 10) * 1000, 0);
  });

  it('follows the current speed over its window, and has no ETA while stalled', () => {
    const clock = fakeClock();
    const meter = new TransferMeter({ now: () => clock.now, windowMs: 5_000 });
    const total = 10_000 * MB;
    let received = 0;
    meter.update({ done: received, total, received });
    for (let second = 0; second < 20; second++) {
      clock.tick(1000);
      received += 200 * MB;
      meter.update({ done: received, total, received });
    }
    // The link slows to 20 MB/s; after one window the old speed is gone.
    let reading = meter.update({ done: received, total, received });
    for (let second = 0; second < 6; second++) {
      clock.tick(1000);
      received += 20 * MB;
      reading = meter.update({ done: received, total, received });
    }
    expect(reading.bytesPerSecond).toBeCloseTo(20 * MB, 0);
    // Nothing arrives for a whole window.
    for (let second = 0; second < 6; second++) {
      clock.tick(1000);
      reading = meter.update({ done: received, total, received });
    }
    expect(reading.bytesPerSecond).toBe(0);
    expect(reading.etaMs).toBeUndefined();
  });

  it('falls back to done where a transfer reports no received count, and has no ETA once done', () => {
    const clock = fakeClock();
    const meter = new TransferMeter({ now: () => clock.now });
    meter.update({ done: 0, total: 300 * MB });
    clock.tick(2000);
    const half = meter.update({ done: 150 * MB, total: 300 * MB });
    expect(half.bytesPerSecond).toBeCloseTo(75 * MB, 0);
    expect(half.etaMs).toBeCloseTo(2000, 0);
    clock.tick(2000);
    expect(meter.update({ done: 300 * MB, total: 300 * MB }).etaMs).toBeUndefined();
  });
});

describe('progress lines', () => {
  it('formats ETAs short, and a line as bytes, rate and ETA', () => {
    expect([formatEta(400), formatEta(45_000), formatEta(72_000), formatEta(3_600_000 + 5 * 60_000)]).toEqual(
      ['1s', '45s', '1m12s', '1h05m'],
    );
    const clock = fakeClock();
    const meter = new TransferMeter({ now: () => clock.now });
    meter.update({ done: 0, total: 16.1e9, received: 0 });
    clock.tick(5000);
    const reading = meter.update({ done: 1.05e9, total: 16.1e9, received: 1.05e9 });
    expect(formatTransfer('model', reading)).toBe('model  1.05 GB / 16.1 GB  210.0 MB/s  ETA 1m12s');
    expect(
      formatTransfer(undefined, { done: 0, total: 5, bytesPerSecond: undefined, etaMs: undefined }),
    ).toBe('0 B / 5 B');
  });

  function download(component: string, total: number, seconds: number, perSecond: number): ProgressEvent[] {
    const events: ProgressEvent[] = [];
    for (let tick = 0; tick <= seconds * perSecond; tick++) {
      const done = Math.round((total * tick) / (seconds * perSecond));
      events.push({ step: 'fetch', status: 'info', component, bytes: { done, total, received: done } });
    }
    return events;
  }

  function linesOn(clock: { now: number }, mode: 'plain' | 'live'): TransferLines {
    return new TransferLines({
      mode,
      now: () => clock.now,
      createMeter: () => new TransferMeter({ now: () => clock.now }),
    });
  }

  it('in plain mode prints a component at most every 10 s and once when it is done', () => {
    const clock = fakeClock();
    const lines = linesOn(clock, 'plain');
    const printed: [number, string][] = [];
    const start = clock.now;
    // 25 s of download at 20 events a second, then the same final count again (the source's 'ok').
    const events = download('model', 500 * MB, 25, 20);
    events.push(events.at(-1) as ProgressEvent);
    for (const [index, event] of events.entries()) {
      if (index > 0) clock.tick(50);
      const line = lines.line(event);
      if (line !== undefined) printed.push([clock.now - start, line]);
    }
    expect(printed.map(([at]) => at)).toEqual([0, 10_000, 20_000, 25_000]);
    expect(printed.at(-1)?.[1]).toMatch(/^model {2}500\.0 MB \/ 500\.0 MB {2}20\.0 MB\/s$/);
    // A second component starts its own line at once.
    const next = lines.line({
      step: 'fetch',
      status: 'info',
      component: 'image',
      bytes: { done: 0, total: 5 },
    });
    expect(next).toBe('image  0 B / 5 B');
  });

  it('in live mode gives every changed line, and nothing for a repeat', () => {
    const clock = fakeClock();
    const lines = linesOn(clock, 'live');
    const events = download('model', 10 * MB, 2, 10);
    let shown = 0;
    for (const event of events) {
      clock.tick(100);
      if (lines.line(event) !== undefined) shown++;
    }
    expect(shown).toBe(events.length);
    expect(lines.line(events.at(-1) as ProgressEvent)).toBeUndefined();
    expect(lines.line({ step: 'fetch', status: 'info', detail: 'no bytes' })).toBeUndefined();
  });
});
