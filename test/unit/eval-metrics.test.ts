import { describe, expect, it } from 'vitest';
import {
  describeMiss,
  type EvalCaseResult,
  firstRelevantRank,
  hitAtK,
  judgeAnswer,
  meanReciprocalRank,
  missedThresholds,
  percentile,
  summarise,
} from '../../src/core/eval/metrics.js';

const result = (over: Partial<EvalCaseResult>): EvalCaseResult => ({
  id: 'q',
  correct: null,
  rank: null,
  retrieval: false,
  retrieved: [],
  answer: '',
  latencyMs: 0,
  completionTokens: 0,
  error: null,
  ...over,
});

describe('evaluation metrics', () => {
  it('percentile by nearest rank', () => {
    const values = [15, 20, 35, 40, 50];
    expect(percentile(values, 5)).toBe(15);
    expect(percentile(values, 30)).toBe(20);
    expect(percentile(values, 40)).toBe(20);
    expect(percentile(values, 50)).toBe(35);
    expect(percentile(values, 100)).toBe(50);
    // 1..100 unsorted: p95 is the 95th smallest, p50 the 50th.
    const hundred = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(percentile(hundred, 95)).toBe(95);
    expect(percentile(hundred, 50)).toBe(50);
    expect(percentile([7], 95)).toBe(7);
    expect(percentile([], 50)).toBeNull();
    expect(() => percentile([1], 0)).toThrow(RangeError);
  });

  it('rank of the first expected source, by document id or by source', () => {
    const retrieved = [
      { document: 'a', source: 'a.md' },
      { document: 'apertus-eval-s:b.md', source: 'b.md' },
      { document: 'c', source: null },
    ];
    expect(firstRelevantRank(retrieved, ['b.md'])).toBe(2);
    expect(firstRelevantRank(retrieved, ['c', 'a.md'])).toBe(1);
    expect(firstRelevantRank(retrieved, ['c'])).toBe(3);
    expect(firstRelevantRank(retrieved, ['z'])).toBeNull();
  });

  it('hit@k and MRR over ranks, a miss counting 0', () => {
    const ranks = [1, 2, null, 4];
    expect(hitAtK(ranks, 1)).toBe(0.25);
    expect(hitAtK(ranks, 3)).toBe(0.5);
    expect(hitAtK(ranks, 4)).toBe(0.75);
    expect(meanReciprocalRank(ranks)).toBeCloseTo((1 + 1 / 2 + 0 + 1 / 4) / 4, 12);
    expect(hitAtK([], 3)).toBeNull();
    expect(meanReciprocalRank([])).toBeNull();
  });

  it('judges answers: every pattern and the reference (case and spaces ignored)', () => {
    expect(judgeAnswer({ expect: [], reference: null }, 'x')).toBeNull();
    expect(judgeAnswer({ expect: ['\\bsix\\b', 'eight'], reference: null }, 'from eight to six')).toBe(true);
    expect(judgeAnswer({ expect: ['\\bsix\\b', 'nine'], reference: null }, 'from eight to six')).toBe(false);
    expect(judgeAnswer({ expect: [], reference: 'Second  Floor' }, 'It is on the second\nfloor.')).toBe(true);
    expect(judgeAnswer({ expect: ['floor'], reference: 'third floor' }, 'the second floor')).toBe(false);
  });

  it('summarises a set and names each threshold missed with its value', () => {
    const metrics = summarise(
      [
        result({ correct: true, retrieval: true, rank: 1, latencyMs: 100, completionTokens: 10 }),
        result({ correct: false, retrieval: true, rank: 2, latencyMs: 300, completionTokens: 20 }),
        result({ correct: null, retrieval: true, rank: null, latencyMs: 200, completionTokens: 0 }),
        result({ correct: false, error: 'chat answered HTTP 500', latencyMs: 0 }),
      ],
      3,
    );
    expect(metrics).toEqual({
      cases: 4,
      accuracy: 0.3333,
      judged: 3,
      k: 3,
      hitAtK: 0.6667,
      mrr: 0.5,
      retrievalCases: 3,
      latencyP50Ms: 200,
      latencyP95Ms: 300,
      tokensPerSecond: 50,
      errors: 1,
    });
    const misses = missedThresholds(metrics, {
      accuracy: 0.3,
      mrr: 0.9,
      latencyP95Ms: 250,
      tokensPerSecond: 10,
    });
    expect(misses).toEqual([
      { metric: 'mrr', value: 0.5, threshold: 0.9, bound: 'min' },
      { metric: 'latencyP95Ms', value: 300, threshold: 250, bound: 'max' },
    ]);
    expect(misses.map(describeMiss)).toEqual([
      'mrr 0.5 is below the threshold 0.9',
      'latencyP95Ms 300 is above the threshold 250',
    ]);
  });

  it('a threshold on a metric the set does not measure is missed, not passed', () => {
    const metrics = summarise([result({ latencyMs: 10 })], 3);
    expect(metrics.hitAtK).toBeNull();
    expect(missedThresholds(metrics, { hitAtK: 0.5 })).toEqual([
      { metric: 'hitAtK', value: null, threshold: 0.5, bound: 'min' },
    ]);
    expect(describeMiss({ metric: 'hitAtK', value: null, threshold: 0.5, bound: 'min' })).toBe(
      'hitAtK was not measured (threshold 0.5)',
    );
  });
});
