/**
 * What prune keeps: the N most recently staged releases and always the current, previous
 * and an interrupted command's; then only blobs and image archives a kept release names,
 * and none at all while a kept release records no blob list.
 */
import { describe, expect, it } from 'vitest';
import { type PruneCandidate, planPrune } from '../../src/core/operations/prune-plan.js';

const hex = (c: string) => c.repeat(64);
const digest = (c: string) => `sha256:${hex(c)}`;

/** Five releases of demo staged a day apart (0.1.0 oldest); blob a is shared by all. */
const releases: PruneCandidate[] = ['1', '2', '3', '4', '5'].map((n) => ({
  release: `releases/demo/0.${n}.0`,
  stagedAt: `2026-11-0${n}T10:00:00.000Z`,
  blobs: [digest('a'), digest(n)],
}));
const store = new Map([...['a', '1', '2', '3', '4', '5', 'f'].map((c) => [hex(c), 100] as const)]);

function plan(overrides: Partial<Parameters<typeof planPrune>[0]> = {}) {
  return planPrune({
    releases,
    current: 'releases/demo/0.5.0',
    previous: 'releases/demo/0.4.0',
    pending: [],
    keep: 2,
    store,
    images: [],
    ...overrides,
  });
}

const decisions = (p: ReturnType<typeof planPrune>) =>
  Object.fromEntries(
    p.releases.map((r) => [r.release.split('/')[2], `${r.action}:${[r.why].flat().join('+')}`]),
  );

describe('planPrune', () => {
  it('keeps the N newest and current/previous, removes the rest with the blobs only they name', () => {
    const p = plan({ keep: 1 });
    expect(decisions(p)).toEqual({
      '0.1.0': 'remove:older',
      '0.2.0': 'remove:older',
      '0.3.0': 'remove:older',
      '0.4.0': 'keep:previous',
      '0.5.0': 'keep:current+recent',
    });
    // a is shared with kept releases; f is no release's (a failed upload's leftover).
    expect(p.blobs.remove.map((b) => b.digest)).toEqual([digest('1'), digest('2'), digest('3'), digest('f')]);
    expect(p.blobs).toMatchObject({ removeBytes: 400, kept: 3, keptAll: null });
  });

  it('never removes current or previous, even with --keep 0, nor what an interrupted command switched between', () => {
    const p = plan({
      keep: 0,
      current: 'releases/demo/0.2.0',
      previous: 'releases/demo/0.1.0',
      pending: ['releases/demo/0.3.0'],
    });
    expect(decisions(p)).toEqual({
      '0.1.0': 'keep:previous',
      '0.2.0': 'keep:current',
      '0.3.0': 'keep:pending',
      '0.4.0': 'remove:older',
      '0.5.0': 'remove:older',
    });
    expect(p.blobs.remove.map((b) => b.digest)).toEqual([digest('4'), digest('5'), digest('f')]);
  });

  it('orders by staging time, not by version', () => {
    const restaged = releases.map((r) =>
      r.release.endsWith('0.1.0') ? { ...r, stagedAt: '2026-12-01T00:00:00.000Z' } : r,
    );
    const p = plan({ releases: restaged, keep: 1, current: null, previous: null });
    expect(decisions(p)['0.1.0']).toBe('keep:recent');
    expect(decisions(p)['0.5.0']).toBe('remove:older');
  });

  it('removes incomplete releases; keeps every blob while a kept release lists none', () => {
    const withOld: PruneCandidate[] = [
      ...releases,
      { release: 'releases/demo/0.0.9', stagedAt: null, blobs: null },
      { release: 'releases/other/1.0.0', stagedAt: '2026-11-30T00:00:00.000Z', blobs: null },
    ];
    const p = plan({ releases: withOld, keep: 1, images: [digest('1')] });
    expect(decisions(p)['0.0.9']).toBe('remove:incomplete');
    expect(decisions(p)['1.0.0']).toBe('keep:recent');
    expect(p.blobs.remove).toEqual([]);
    expect(p.blobs.kept).toBe(store.size);
    expect(p.blobs.keptAll).toContain('releases/other/1.0.0 records no blob list');
    expect(p.images.remove).toEqual([]);
  });

  it('removes image archives no kept release names', () => {
    const p = plan({ keep: 0, images: [digest('3'), digest('5')] });
    expect(p.images).toEqual({ remove: [digest('3')], kept: 1 });
  });

  it('refuses a negative or fractional keep', () => {
    expect(() => plan({ keep: -1 })).toThrow(RangeError);
    expect(() => plan({ keep: 1.5 })).toThrow(RangeError);
  });
});
