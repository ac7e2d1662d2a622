// Prometheus metrics of the RAG service, with prom-client (the standard Node client; it
// travels in the runtime component's node_modules, which rag/ resolves packages from).
// Requests by route and status, their latency, retrieval latency and hits, the collection
// and the audit log; process_* from the client's defaults.

import client from 'prom-client';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Passages a retrieval returned: top_k is at most 50. */
const HIT_BUCKETS = [0, 1, 2, 3, 4, 5, 8, 10, 20, 50];
const SCORE_BUCKETS = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1];
// Gauges named *_total, which `promtool check metrics` rejects.
const LINT_FAILING_DEFAULTS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/** `readGauges()` gives the values read at scrape time: documents, chunks, auditRecords, auditLastSeq, runtimeUp. */
export function createMetrics(readGauges) {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  for (const name of LINT_FAILING_DEFAULTS) registry.removeSingleMetric(name);
  const registers = [registry];

  const requests = new client.Counter({
    name: 'apertus_rag_requests_total',
    help: 'HTTP requests answered, by route, method and status.',
    labelNames: ['endpoint', 'method', 'status'],
    registers,
  });
  const duration = new client.Histogram({
    name: 'apertus_rag_request_duration_seconds',
    help: 'Time from request to response sent, by route.',
    labelNames: ['endpoint'],
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const retrievalSeconds = new client.Histogram({
    name: 'apertus_rag_retrieval_duration_seconds',
    help: 'Time to embed a question and search the collection.',
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const retrievalHits = new client.Histogram({
    name: 'apertus_rag_retrieval_hits',
    help: 'Passages one retrieval returned.',
    buckets: HIT_BUCKETS,
    registers,
  });
  const retrievalTopScore = new client.Histogram({
    name: 'apertus_rag_retrieval_top_score',
    help: 'Cosine similarity of the best passage of a retrieval; falling scores mean questions the documents do not answer.',
    buckets: SCORE_BUCKETS,
    registers,
  });
  const emptyRetrievals = new client.Counter({
    name: 'apertus_rag_retrievals_empty_total',
    help: 'Retrievals that found no passage at all.',
    registers,
  });

  const gauge = (name, help, read) =>
    new client.Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read(readGauges()));
      },
    });
  gauge('apertus_rag_documents', 'Documents in the collection.', (g) => g.documents);
  gauge('apertus_rag_chunks', 'Chunks (vectors) in the collection.', (g) => g.chunks);
  gauge(
    'apertus_rag_audit_last_seq',
    'Sequence number of the last audit record in the log.',
    (g) => g.auditLastSeq,
  );
  gauge('apertus_rag_runtime_up', '1 when the model runtime answered its last health check.', (g) =>
    g.runtimeUp ? 1 : 0,
  );
  new client.Counter({
    name: 'apertus_rag_audit_records_total',
    help: 'Audit records appended by this process.',
    registers,
    collect() {
      // The audit log counts; the counter shows its count (it only grows within a process).
      this.reset();
      this.inc(readGauges().auditRecords);
    },
  });

  return {
    contentType: registry.contentType,
    render: () => registry.metrics(),
    /** `endpoint` is the route pattern (e.g. /v1/documents/:id), never the raw path: bounded labels. */
    observe(endpoint, method, status, seconds) {
      requests.inc({ endpoint, method, status: String(status) });
      duration.observe({ endpoint }, seconds);
    },
    retrieval(seconds, hits) {
      retrievalSeconds.observe(seconds);
      retrievalHits.observe(hits.length);
      if (hits.length === 0) emptyRetrievals.inc();
      else retrievalTopScore.observe(Math.max(...hits.map((h) => Number(h.score) || 0)));
    },
  };
}
