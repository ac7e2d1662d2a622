/**
 * Runs a release's evaluation sets against its services on a host, over the transport (HTTP
 * through the SSH channel to the services' loopback ports, as verification does). For each
 * set: its own documents are ingested under reserved ids (`apertus-eval-...`), each
 * question is sent to retrieval (`/v1/query`, top k, when it names sources) and to chat
 * (`/v1/chat/completions`, timed), and the documents are removed again, whatever happened.
 */
import { httpRequest } from '../host/http-over-transport.js';
import type { Transport } from '../host/transport.js';
import { RAG_CALLER_HEADER } from '../runtimes/rag/rag-service.js';
import { adapterOf, type ServiceSpec } from '../runtimes/registry.js';
import type { EvalSet, EvalSpec, EvalThresholds } from './eval-set.js';
import {
  type EvalCaseResult,
  type EvalMetrics,
  firstRelevantRank,
  judgeAnswer,
  missedThresholds,
  summarise,
  type ThresholdMiss,
} from './metrics.js';

/** Recorded as the caller of the run's requests in the RAG audit log. */
export const EVAL_CALLER = 'apertus-eval';
const REQUEST_TIMEOUT_MS = 120_000;

export interface EvalSetResult {
  name: string;
  service: string;
  sha256: string;
  ok: boolean;
  metrics: EvalMetrics;
  misses: ThresholdMiss[];
  /** Why the set could not run at all (its service missing, its documents refused); null when it ran. */
  error: string | null;
  cases: EvalCaseResult[];
}

/** One evaluation of one release. Field names are a contract (reports, --json). */
export interface EvalRun {
  ok: boolean;
  /** The release measured, as `current` names it: releases/NAME/VERSION. */
  evaluatedRelease: string;
  name: string;
  version: string;
  measuredAt: string;
  k: number;
  thresholds: EvalThresholds;
  sets: EvalSetResult[];
}

export interface RunEvalInput {
  transport: Transport;
  services: readonly ServiceSpec[];
  spec: EvalSpec;
  release: { linkTarget: string; name: string; version: string };
  /** Only this set. */
  set?: string | undefined;
  signal?: AbortSignal | undefined;
  /** Each question as it is answered. */
  onCase?: ((set: string, result: EvalCaseResult) => void) | undefined;
}

export async function runEval(input: RunEvalInput): Promise<EvalRun> {
  const { spec } = input;
  const measuredAt = new Date().toISOString();
  const sets: EvalSetResult[] = [];
  for (const set of spec.sets) {
    if (input.set !== undefined && set.name !== input.set) continue;
    sets.push(await runSet(input, set));
  }
  return {
    ok: sets.every((s) => s.ok),
    evaluatedRelease: input.release.linkTarget,
    name: input.release.name,
    version: input.release.version,
    measuredAt,
    k: spec.k,
    thresholds: spec.thresholds,
    sets,
  };
}

/** The id a set's document is ingested under: reserved, so no operator's document is replaced. */
export function evalDocumentId(set: string, name: string): string {
  return `apertus-eval-${set}:${name.replace(/[^A-Za-z0-9._@+-]/g, '-')}`.slice(0, 200);
}

async function runSet(input: RunEvalInput, set: EvalSet): Promise<EvalSetResult> {
  const { transport, spec, signal } = input;
  const service = input.services.find((s) => s.name === set.service);
  const failed = (error: string): EvalSetResult => {
    const metrics = summarise([], spec.k);
    return {
      name: set.name,
      service: set.service,
      sha256: set.sha256,
      ok: false,
      metrics,
      misses: missedThresholds(metrics, spec.thresholds),
      error,
      cases: [],
    };
  };
  if (!service) return failed(`the release has no service named ${set.service}`);
  const call = async (method: string, path: string, json?: unknown, abortable = true) => {
    const response = await httpRequest(transport, {
      port: service.port,
      method,
      path,
      json,
      headers: { [RAG_CALLER_HEADER]: EVAL_CALLER },
      timeoutMs: REQUEST_TIMEOUT_MS,
      ...(abortable && signal ? { signal } : {}),
    });
    let body: Record<string, unknown> | null = null;
    try {
      body = JSON.parse(response.body) as Record<string, unknown>;
    } catch {}
    return { status: response.status, body, text: response.body.slice(0, 300) };
  };
  const ingested: string[] = [];
  try {
    for (const doc of set.documents) {
      const id = evalDocumentId(set.name, doc.name);
      const answer = await call('POST', '/v1/documents', {
        id,
        source: doc.name,
        format: doc.format,
        text: doc.text,
      });
      if (answer.status !== 200 && answer.status !== 201)
        return failed(`ingesting ${doc.name} answered HTTP ${answer.status}: ${answer.text}`);
      ingested.push(id);
    }
    const model = adapterOf(service).modelId(service);
    const results: EvalCaseResult[] = [];
    for (const c of set.cases) {
      signal?.throwIfAborted();
      const result: EvalCaseResult = {
        id: c.id,
        correct: null,
        rank: null,
        retrieval: c.sources.length > 0,
        retrieved: [],
        answer: '',
        latencyMs: 0,
        completionTokens: 0,
        error: null,
      };
      try {
        if (result.retrieval) {
          const found = await call('POST', '/v1/query', { query: c.question, top_k: spec.k });
          if (found.status !== 200) throw new Error(`retrieval answered HTTP ${found.status}: ${found.text}`);
          const hits = (Array.isArray(found.body?.data) ? found.body.data : []) as Array<{
            document?: unknown;
            source?: unknown;
          }>;
          const ranked = hits.map((h) => ({
            document: String(h.document),
            source: typeof h.source === 'string' ? h.source : null,
          }));
          result.retrieved = ranked.map((h) => h.document);
          result.rank = firstRelevantRank(ranked, c.sources);
        }
        const started = performance.now();
        const chat = await call('POST', '/v1/chat/completions', {
          ...(model ? { model } : {}),
          messages: [{ role: 'user', content: c.question }],
          max_tokens: set.maxTokens,
          temperature: 0,
        });
        result.latencyMs = Math.round(performance.now() - started);
        if (chat.status !== 200) throw new Error(`chat answered HTTP ${chat.status}: ${chat.text}`);
        const choice = (chat.body?.choices as Array<{ message?: { content?: unknown } }> | undefined)?.[0];
        const answer = typeof choice?.message?.content === 'string' ? choice.message.content : '';
        const usage = chat.body?.usage as { completion_tokens?: unknown } | undefined;
        result.completionTokens = typeof usage?.completion_tokens === 'number' ? usage.completion_tokens : 0;
        result.answer = answer.length > 200 ? `${answer.slice(0, 200)}…` : answer;
        result.correct = judgeAnswer(c, answer);
      } catch (error) {
        if (signal?.aborted) throw error;
        result.error = error instanceof Error ? error.message : String(error);
        if (c.expect.length > 0 || c.reference !== null) result.correct = false;
      }
      results.push(result);
      input.onCase?.(set.name, result);
    }
    const metrics = summarise(results, spec.k);
    const misses = missedThresholds(metrics, spec.thresholds);
    return {
      name: set.name,
      service: set.service,
      sha256: set.sha256,
      ok: misses.length === 0 && metrics.errors === 0,
      metrics,
      misses,
      error: metrics.errors > 0 ? `${metrics.errors} of ${metrics.cases} questions failed to run` : null,
      cases: results,
    };
  } catch (error) {
    if (signal?.aborted) throw error;
    return failed(error instanceof Error ? error.message : String(error));
  } finally {
    for (const id of ingested) {
      // Even after an abort, best effort: an evaluation document left behind would be cited in real answers.
      await call('DELETE', `/v1/documents/${encodeURIComponent(id)}`, undefined, false).catch(
        () => undefined,
      );
    }
  }
}

/** One line per set: its metrics, or what it missed. */
export function describeSet(set: EvalSetResult): string {
  const m = set.metrics;
  const shown = [
    m.accuracy !== null ? `accuracy ${m.accuracy}` : null,
    m.hitAtK !== null ? `hit@${m.k} ${m.hitAtK}` : null,
    m.mrr !== null ? `MRR ${m.mrr}` : null,
    m.latencyP50Ms !== null ? `p50 ${m.latencyP50Ms} ms` : null,
    m.latencyP95Ms !== null ? `p95 ${m.latencyP95Ms} ms` : null,
    m.tokensPerSecond !== null ? `${m.tokensPerSecond} tokens/s` : null,
  ].filter(Boolean);
  return `set ${set.name}: ${m.cases} questions; ${shown.join(', ')}`;
}
