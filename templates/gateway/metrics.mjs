// Prometheus text exposition (format 0.0.4) for the gateway, without a client library.
// Labels are bounded: the key name (one per key in the key file), a route family (never the
// raw path) and the status.

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

function escapeLabel(value) {
  return String(value).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labels(pairs) {
  return `{${Object.entries(pairs)
    .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
    .join(',')}}`;
}

/** The route family of a path: a fixed set, so a client cannot mint label values. */
export function routeFamily(path) {
  if (
    path === '/v1/chat/completions' ||
    path === '/v1/embeddings' ||
    path === '/v1/models' ||
    path === '/metrics'
  )
    return path;
  if (/^\/rag\/[^/]+\/v1\//.test(path) || /^\/v1\/(documents(\/.*)?|query)$/.test(path)) return 'rag';
  return 'other';
}

export function createGatewayMetrics() {
  const requests = new Map();
  const latency = new Map();
  const authFailures = new Map();
  const rateLimited = new Map();
  let accessLogFailures = 0;
  const count = (map, key) => map.set(key, (map.get(key) ?? 0) + 1);

  return {
    observe(caller, path, status, seconds) {
      const route = routeFamily(path);
      count(requests, JSON.stringify([caller, route, String(status)]));
      let h = latency.get(route);
      if (h === undefined) {
        h = { buckets: new Array(LATENCY_BUCKETS.length).fill(0), sum: 0, count: 0 };
        latency.set(route, h);
      }
      for (let i = 0; i < LATENCY_BUCKETS.length; i++) if (seconds <= LATENCY_BUCKETS[i]) h.buckets[i] += 1;
      h.sum += seconds;
      h.count += 1;
    },
    authFailure: (reason) => count(authFailures, reason),
    rateLimited: (caller) => count(rateLimited, caller),
    accessLogFailure: () => {
      accessLogFailures += 1;
    },

    /** `gauges`: values read at scrape time. */
    render({ inFlight, queued, connections, keys, accessLogSeq }) {
      const out = [];
      const family = (name, type, help) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      family(
        'apertus_gateway_requests_total',
        'counter',
        'Requests answered, by key name, route and status.',
      );
      for (const [key, n] of [...requests].sort()) {
        const [caller, route, status] = JSON.parse(key);
        out.push(`apertus_gateway_requests_total${labels({ key: caller, route, status })} ${n}`);
      }
      family(
        'apertus_gateway_request_duration_seconds',
        'histogram',
        'Time from request to the end of its answer.',
      );
      for (const [route, h] of [...latency].sort()) {
        LATENCY_BUCKETS.forEach((le, i) => {
          out.push(`apertus_gateway_request_duration_seconds_bucket${labels({ route, le })} ${h.buckets[i]}`);
        });
        out.push(
          `apertus_gateway_request_duration_seconds_bucket${labels({ route, le: '+Inf' })} ${h.count}`,
        );
        out.push(`apertus_gateway_request_duration_seconds_sum${labels({ route })} ${h.sum}`);
        out.push(`apertus_gateway_request_duration_seconds_count${labels({ route })} ${h.count}`);
      }
      family(
        'apertus_gateway_auth_failures_total',
        'counter',
        'Requests refused for their API key, by reason.',
      );
      for (const [reason, n] of [...authFailures].sort())
        out.push(`apertus_gateway_auth_failures_total${labels({ reason })} ${n}`);
      family('apertus_gateway_rate_limited_total', 'counter', 'Requests refused with 429, by key name.');
      for (const [caller, n] of [...rateLimited].sort())
        out.push(`apertus_gateway_rate_limited_total${labels({ key: caller })} ${n}`);
      family(
        'apertus_gateway_access_log_failures_total',
        'counter',
        'Access-log records that could not be written.',
      );
      out.push(`apertus_gateway_access_log_failures_total ${accessLogFailures}`);
      family('apertus_gateway_in_flight', 'gauge', 'Requests waiting on an upstream.');
      out.push(`apertus_gateway_in_flight ${inFlight}`);
      family('apertus_gateway_queue_depth', 'gauge', 'Requests queued for a free upstream slot.');
      out.push(`apertus_gateway_queue_depth ${queued}`);
      family('apertus_gateway_open_connections', 'gauge', 'Client connections open.');
      out.push(`apertus_gateway_open_connections ${connections}`);
      family('apertus_gateway_api_keys', 'gauge', 'Keys in the key file, revoked ones included.');
      out.push(`apertus_gateway_api_keys ${keys}`);
      family('apertus_gateway_access_log_seq', 'gauge', 'The last access-log record number.');
      out.push(`apertus_gateway_access_log_seq ${accessLogSeq}`);
      family('apertus_gateway_resident_memory_bytes', 'gauge', 'Resident set size of the gateway process.');
      out.push(`apertus_gateway_resident_memory_bytes ${process.memoryUsage.rss()}`);
      return `${out.join('\n')}\n`;
    },
  };
}
