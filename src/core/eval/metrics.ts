/**
 * The metric maths of an evaluation run, on plain data: answer judgement, rank of the
 * first expected source, hit@k, mean reciprocal rank, latency percentiles, tokens per
 * second, and the thresholds' verdict.
 */
import type { EvalCase, EvalThresholds } from './eval-set.js';

/**
 * The p-th percentile (0-100] by the nearest-rank method: the smallest value with at least
 * p% of the values at or below it. Null for no values.
 */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  if (!(p > 0 && p <= 100)) throw new RangeError(`percentile ${p} is not in (0, 100]`);
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[rank - 1] ?? null;
}

/** Whether a retrieved passage is one the case expects: by document id, or by the source it was ingested with. */
export function isExpected(
  hit: { document: string; source?: string | null },
  expected: readonly string[],
): boolean {
  return expected.some((e) => e === hit.document || (hit.source != null && e === hit.source));
}

/** 1-based rank of the first retrieved passage the case expects; null when none is among them. */
export function firstRelevantRank(
  retrieved: ReadonlyArray<{ document: string; source?: string | null }>,
  expected: readonly string[],
): number | null {
  const index = retrieved.findIndex((hit) => isExpected(hit, expected));
  return index === -1 ? null : index + 1;
}

/** Share of ranks within k (null ranks count as misses); null for no ranks. */
export function hitAtK(ranks: ReadonlyArray<number | null>, k: number): number | null {
  if (ranks.length === 0) return null;
  return ranks.filter((r) => r !== null && r <= k).length / ranks.length;
}

/** Mean of 1/rank (a miss adds 0); null for no ranks. */
export function meanReciprocalRank(ranks: ReadonlyArray<number | null>): number | null {
  if (ranks.length === 0) return null;
  return ranks.reduce<number>((sum, r) => sum + (r === null ? 0 : 1 / r), 0) / ranks.length;
}

const normalise = (text: string) => text.toLowerCase().replace(/\s+/g, ' ').trim();

/**
 * Whether an answer is right: every `expect` pattern matches and the reference answer
 * appears in it (case and white space ignored). Null when the case judges no answer.
 */
export function judgeAnswer(c: Pick<EvalCase, 'expect' | 'reference'>, answer: string): boolean | null {
  if (c.expect.length === 0 && c.reference === null) return null;
  const patterns = c.expect.every((p) => new RegExp(p, 'u').test(answer));
  const reference = c.reference === null || normalise(answer).includes(normalise(c.reference));
  return patterns && reference;
}

/** One question's outcome. */
export interface EvalCaseResult {
  id: string;
  /** null: the case judges no answer. */
  correct: boolean | null;
  /** Rank of the first expected source among the k retrieved; null: not among them, or not asked. */
  rank: number | null;
  /** Whether the case names sources (and so counts for hit@k and MRR). */
  retrieval: boolean;
  /** The documents retrieved, in rank order. */
  retrieved: string[];
  /** The answer, cut to 200 characters. */
  answer: string;
  latencyMs: number;
  completionTokens: number;
  error: string | null;
}

export interface EvalMetrics {
  cases: number;
  /** Share of judged answers that are right; null when no case judges its answer. */
  accuracy: number | null;
  judged: number;
  k: number;
  hitAtK: number | null;
  mrr: number | null;
  /** Cases that name sources. */
  retrievalCases: number;
  latencyP50Ms: number | null;
  latencyP95Ms: number | null;
  /** Completion tokens over the seconds the answers took; null with no tokens. */
  tokensPerSecond: number | null;
  errors: number;
}

const round = (value: number | null, digits = 4) =>
  value === null ? null : Math.round(value * 10 ** digits) / 10 ** digits;

export function summarise(results: readonly EvalCaseResult[], k: number): EvalMetrics {
  const judged = results.filter((r) => r.correct !== null);
  const ranks = results.filter((r) => r.retrieval).map((r) => r.rank);
  const latencies = results.filter((r) => r.error === null).map((r) => r.latencyMs);
  const tokens = results.reduce((sum, r) => sum + r.completionTokens, 0);
  const seconds = latencies.reduce((sum, ms) => sum + ms, 0) / 1000;
  return {
    cases: results.length,
    accuracy: round(judged.length === 0 ? null : judged.filter((r) => r.correct).length / judged.length),
    judged: judged.length,
    k,
    hitAtK: round(hitAtK(ranks, k)),
    mrr: round(meanReciprocalRank(ranks)),
    retrievalCases: ranks.length,
    latencyP50Ms: percentile(latencies, 50),
    latencyP95Ms: percentile(latencies, 95),
    tokensPerSecond: round(tokens > 0 && seconds > 0 ? tokens / seconds : null, 2),
    errors: results.filter((r) => r.error !== null).length,
  };
}

/** A threshold the metrics miss: which metric, its value, and the bound. */
export interface ThresholdMiss {
  metric: keyof EvalThresholds;
  value: number | null;
  threshold: number;
  /** 'min': the value must be at least the threshold; 'max': at most. */
  bound: 'min' | 'max';
}

const BOUNDS: Record<keyof EvalThresholds, 'min' | 'max'> = {
  accuracy: 'min',
  hitAtK: 'min',
  mrr: 'min',
  latencyP50Ms: 'max',
  latencyP95Ms: 'max',
  tokensPerSecond: 'min',
};

/**
 * The thresholds a set's metrics miss. A metric the set does not measure (no judged
 * answers, no sources named) misses its threshold: a gate must not pass on nothing.
 */
export function missedThresholds(metrics: EvalMetrics, thresholds: EvalThresholds): ThresholdMiss[] {
  const misses: ThresholdMiss[] = [];
  for (const metric of Object.keys(BOUNDS) as Array<keyof EvalThresholds>) {
    const threshold = thresholds[metric];
    if (threshold === undefined) continue;
    const value = metrics[metric];
    const bound = BOUNDS[metric];
    const ok = value !== null && (bound === 'min' ? value >= threshold : value <= threshold);
    if (!ok) misses.push({ metric, value, threshold, bound });
  }
  return misses;
}

/** "mrr 0.62 is below the threshold 0.9" */
export function describeMiss(miss: ThresholdMiss): string {
  if (miss.value === null) return `${miss.metric} was not measured (threshold ${miss.threshold})`;
  return `${miss.metric} ${miss.value} is ${miss.bound === 'min' ? 'below' : 'above'} the threshold ${miss.threshold}`;
}
