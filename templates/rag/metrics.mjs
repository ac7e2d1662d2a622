// Prometheus text exposition (format 0.0.4) for the RAG service, without a client library.

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

function escapeLabel(value) {
  return String(value).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labels(pairs) {
  const entries = Object.entries(pairs);
  if (entries.length === 0) return '';
  return `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
}

function formatNumber(n) {
  if (n === Number.POSITIVE_INFINITY) return '+Inf';
  if (Number.isNaN(n)) return 'NaN';
  return String(n);
}

export function createMetrics() {
  /** key `endpoint\0method\0status` -> count */
  const requests = new Map();
  /** endpoint -> { buckets: number[], sum, count } */
  const latency = new Map();
  const startedSeconds = Date.now() / 1000;

  return {
    /** `endpoint` is the route pattern (e.g. /v1/documents/:id), never the raw path: bounded labels. */
    observe(endpoint, method, status, seconds) {
      const key = `${endpoint}\0${method}\0${status}`;
      requests.set(key, (requests.get(key) ?? 0) + 1);
      let h = latency.get(endpoint);
      if (h === undefined) {
        h = { buckets: new Array(LATENCY_BUCKETS.length).fill(0), sum: 0, count: 0 };
        latency.set(endpoint, h);
      }
      for (let i = 0; i < LATENCY_BUCKETS.length; i++) if (seconds <= LATENCY_BUCKETS[i]) h.buckets[i] += 1;
      h.sum += seconds;
      h.count += 1;
    },

    /** `gauges`: values read at scrape time. */
    render(gauges) {
      const out = [];
      const family = (name, type, help) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);

      family('apertus_rag_requests_total', 'counter', 'HTTP requests answered, by route, method and status.');
      for (const [key, count] of [...requests.entries()].sort()) {
        const [endpoint, method, status] = key.split('\0');
        out.push(`apertus_rag_requests_total${labels({ endpoint, method, status })} ${count}`);
      }

      family(
        'apertus_rag_request_duration_seconds',
        'histogram',
        'Time from request to response sent, by route.',
      );
      for (const [endpoint, h] of [...latency.entries()].sort()) {
        LATENCY_BUCKETS.forEach((le, i) => {
          out.push(
            `apertus_rag_request_duration_seconds_bucket${labels({ endpoint, le: formatNumber(le) })} ${h.buckets[i]}`,
          );
        });
        out.push(`apertus_rag_request_duration_seconds_bucket${labels({ endpoint, le: '+Inf' })} ${h.count}`);
        out.push(`apertus_rag_request_duration_seconds_sum${labels({ endpoint })} ${h.sum}`);
        out.push(`apertus_rag_request_duration_seconds_count${labels({ endpoint })} ${h.count}`);
      }

      family('apertus_rag_documents', 'gauge', 'Documents in the collection.');
      out.push(`apertus_rag_documents ${gauges.documents}`);
      family('apertus_rag_chunks', 'gauge', 'Chunks (vectors) in the collection.');
      out.push(`apertus_rag_chunks ${gauges.chunks}`);
      family('apertus_rag_audit_records_total', 'counter', 'Audit records appended by this process.');
      out.push(`apertus_rag_audit_records_total ${gauges.auditRecords}`);
      family('apertus_rag_audit_last_seq', 'gauge', 'Sequence number of the last audit record in the log.');
      out.push(`apertus_rag_audit_last_seq ${gauges.auditLastSeq}`);
      family('apertus_rag_runtime_up', 'gauge', '1 when the model runtime answered its last health check.');
      out.push(`apertus_rag_runtime_up ${gauges.runtimeUp ? 1 : 0}`);
      family(
        'process_start_time_seconds',
        'gauge',
        'Start time of the process since the Unix epoch, in seconds.',
      );
      out.push(`process_start_time_seconds ${Math.floor(startedSeconds)}`);
      family('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.');
      out.push(`process_resident_memory_bytes ${process.memoryUsage.rss()}`);
      return `${out.join('\n')}\n`;
    },
  };
}
