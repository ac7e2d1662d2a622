// Prometheus metrics of the llamacpp runtime server, with prom-client (the standard Node
// client; it travels in the runtime component's node_modules closure next to
// node-llama-cpp). One registry per process; GET /metrics renders it.

import client from 'prom-client';

/** Seconds; from a warm tiny model (milliseconds) to a cold 8B prompt on a small CPU (minutes). */
const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const LINT_FAILING_DEFAULTS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];
const RATE_BUCKETS = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

export function createRuntimeMetrics({ modelId }) {
  const registry = new client.Registry();
  registry.setDefaultLabels({ model: modelId });
  client.collectDefaultMetrics({ register: registry });
  // Gauges named *_total, which `promtool check metrics` rejects; process_* and the heap
  // metrics say what they would.
  for (const name of LINT_FAILING_DEFAULTS) registry.removeSingleMetric(name);

  const requests = new client.Counter({
    name: 'apertus_runtime_requests_total',
    help: 'HTTP requests answered, by route (the route pattern, or "unmatched"), method and status.',
    labelNames: ['route', 'method', 'status'],
    registers: [registry],
  });
  const duration = new client.Histogram({
    name: 'apertus_runtime_request_duration_seconds',
    help: 'Time from request to the last byte of the response, by route.',
    labelNames: ['route'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const promptTokens = new client.Counter({
    name: 'apertus_runtime_prompt_tokens_total',
    help: 'Prompt tokens evaluated (chat prompts and embedding inputs), by endpoint.',
    labelNames: ['endpoint'],
    registers: [registry],
  });
  const completionTokens = new client.Counter({
    name: 'apertus_runtime_completion_tokens_total',
    help: 'Tokens generated, the end-of-generation token included.',
    registers: [registry],
  });
  const timeToFirstToken = new client.Histogram({
    name: 'apertus_runtime_time_to_first_token_seconds',
    help: 'Time from the start of a generation (after waiting in the queue) to its first token.',
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const queueWait = new client.Histogram({
    name: 'apertus_runtime_queue_wait_seconds',
    help: 'Time a request waited for the model (one sequence serves requests in turn).',
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const tokensPerSecond = new client.Histogram({
    name: 'apertus_runtime_generation_tokens_per_second',
    help: 'Generation speed of each completion: tokens after the first over the time they took.',
    buckets: RATE_BUCKETS,
    registers: [registry],
  });
  const queueDepth = new client.Gauge({
    name: 'apertus_runtime_queue_depth',
    help: 'Requests waiting for the model, the one being served not counted.',
    registers: [registry],
  });
  const loadSeconds = new client.Gauge({
    name: 'apertus_runtime_model_load_seconds',
    help: 'How long loading the model took at start; absent until it is loaded.',
    registers: [registry],
  });
  const loaded = new client.Gauge({
    name: 'apertus_runtime_model_loaded',
    help: '1 once the model is loaded and the server answers requests.',
    registers: [registry],
  });
  loaded.set(0);

  return {
    contentType: registry.contentType,
    render: () => registry.metrics(),
    request(route, method, status, seconds) {
      requests.inc({ route, method, status: String(status) });
      duration.observe({ route }, seconds);
    },
    promptTokens: (endpoint, count) => promptTokens.inc({ endpoint }, count),
    /** One generation: `firstTokenSeconds` null when it produced no token. */
    generation({ completion, firstTokenSeconds, totalSeconds }) {
      completionTokens.inc(completion);
      if (firstTokenSeconds !== null) timeToFirstToken.observe(firstTokenSeconds);
      const decodeSeconds = totalSeconds - (firstTokenSeconds ?? totalSeconds);
      if (completion > 1 && decodeSeconds > 0) tokensPerSecond.observe((completion - 1) / decodeSeconds);
    },
    queueWait: (seconds) => queueWait.observe(seconds),
    queueDepth: (depth) => queueDepth.set(depth),
    modelLoaded(seconds) {
      loadSeconds.set(seconds);
      loaded.set(1);
    },
  };
}
