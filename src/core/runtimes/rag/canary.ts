/**
 * The RAG canary of install verification: ingest a document holding a unique marker, ask
 * for it through the RAG chat endpoint, check that its passage was retrieved and cited in
 * `sources`, then delete it and check it is gone.
 *
 * It asserts retrieval and citation, never the answer's text: with the demo's
 * random-weight model the answer means nothing. The question is the canary passage's exact
 * text, so its embedding is the stored one (cosine 1.0 up to rounding) whatever the model:
 * the check holds for random embeddings as for real ones. It fails when the passage is not
 * among the sources, which is what a broken store, embedding path or collection shows as.
 */
import { randomBytes } from 'node:crypto';
import { httpRequest } from '../../host/http-over-transport.js';
import type { Transport } from '../../host/transport.js';
import type { OpenAiEndpoint } from '../openai-checks.js';
import { RAG_CALLER_HEADER } from './rag-service.js';

export interface RagCanaryOptions {
  /** The RAG service's port on the host's loopback, or the gateway's route to it (its headers replace `caller`). */
  port: number | OpenAiEndpoint;
  /** Service name for the result; default 'rag'. */
  service?: string;
  /** Recorded as the caller of the canary's requests in the audit log. */
  caller?: string;
  /** Per request; default 120 s (the runtime may queue chat requests). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** The shape of install's ServiceCheck (src/core/runtimes/service-check.ts). */
export interface RagCanaryCheck {
  id: 'verify.rag-canary';
  service: string;
  status: 'ok' | 'fail';
  detail: string;
  ms: number;
  metrics?: Record<string, number>;
}

interface Source {
  document?: unknown;
  chunk?: unknown;
  score?: unknown;
}

const DEFAULT_TIMEOUT_MS = 120_000;
/** The passage's own embedding scores 1.0; anything this far below means it was not the one found. */
const MIN_SELF_SCORE = 0.99;

export async function runRagCanary(transport: Transport, options: RagCanaryOptions): Promise<RagCanaryCheck> {
  const started = Date.now();
  const service = options.service ?? 'rag';
  const marker = `apertus-canary-${randomBytes(8).toString('hex')}`;
  const documentId = marker;
  // One short line without runs of spaces: the service stores it as one chunk, unchanged.
  const passage = `Canary ${marker}: apertus checks that this passage is retrieved and cited on this host.`;
  const call = async (method: string, path: string, json?: unknown) => {
    const via: OpenAiEndpoint = typeof options.port === 'number' ? { port: options.port } : options.port;
    const response = await httpRequest(transport, {
      port: via.port,
      ...(via.host ? { host: via.host } : {}),
      ...(via.tls ? { tls: via.tls } : {}),
      method,
      path: `${via.pathPrefix ?? ''}${path}`,
      json,
      headers: via.headers ?? { [RAG_CALLER_HEADER]: options.caller ?? 'apertus-install-canary' },
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      signal: options.signal,
    });
    let body: unknown = null;
    try {
      body = JSON.parse(response.body);
    } catch {}
    return { status: response.status, body, text: response.body.slice(0, 300) };
  };
  const result = (
    status: 'ok' | 'fail',
    detail: string,
    metrics?: Record<string, number>,
  ): RagCanaryCheck => ({
    id: 'verify.rag-canary',
    service,
    status,
    detail,
    ms: Date.now() - started,
    ...(metrics ? { metrics } : {}),
  });

  let ingested = false;
  try {
    const ingest = await call('POST', '/v1/documents', {
      id: documentId,
      title: 'apertus install canary',
      source: 'apertus install',
      format: 'text',
      text: passage,
    });
    if (ingest.status !== 201 && ingest.status !== 200) {
      return result('fail', `ingest answered HTTP ${ingest.status}: ${ingest.text}`);
    }
    ingested = true;

    const askStarted = Date.now();
    const chat = await call('POST', '/v1/chat/completions', {
      messages: [{ role: 'user', content: passage }],
      max_tokens: 4,
      temperature: 0,
    });
    const askMs = Date.now() - askStarted;
    if (chat.status !== 200) return result('fail', `chat answered HTTP ${chat.status}: ${chat.text}`);
    const body = chat.body as { sources?: Source[]; choices?: unknown[] } | null;
    const sources = Array.isArray(body?.sources) ? body.sources : [];
    if (!Array.isArray(body?.choices) || body.choices.length === 0) {
      return result('fail', 'chat answered without choices');
    }
    const rank = sources.findIndex((s) => s.document === documentId);
    if (rank === -1) {
      return result(
        'fail',
        `the canary passage was not among the ${sources.length} sources cited (${sources.map((s) => String(s.document)).join(', ') || 'none'})`,
      );
    }
    const score = Number(sources[rank]?.score);
    if (!(score >= MIN_SELF_SCORE)) {
      return result(
        'fail',
        `the canary passage was cited with score ${score}; its own text should score 1.0 (the embeddings are not deterministic?)`,
      );
    }

    const removed = await call('DELETE', `/v1/documents/${encodeURIComponent(documentId)}`);
    ingested = removed.status !== 200;
    if (removed.status !== 200)
      return result('fail', `delete answered HTTP ${removed.status}: ${removed.text}`);
    const after = await call('POST', '/v1/query', { query: passage, top_k: 1 });
    const still =
      after.status === 200 &&
      ((after.body as { data?: Source[] } | null)?.data ?? []).some((hit) => hit.document === documentId);
    if (after.status !== 200)
      return result('fail', `query after delete answered HTTP ${after.status}: ${after.text}`);
    if (still) return result('fail', 'the canary passage is still retrieved after its document was deleted');
    return result(
      'ok',
      `marker ${marker} retrieved at rank ${rank + 1} (score ${score.toFixed(3)}), cited, deleted`,
      {
        rank: rank + 1,
        score: Number(score.toFixed(4)),
        chatMs: askMs,
      },
    );
  } catch (error) {
    return result('fail', error instanceof Error ? error.message : String(error));
  } finally {
    if (ingested) {
      // Best effort: a canary left behind would be cited in real answers.
      await call('DELETE', `/v1/documents/${encodeURIComponent(documentId)}`).catch(() => undefined);
    }
  }
}
