/**
 * Load on the RAG service: N concurrent clients (default 50) for a fixed time (default
 * 60 s), a mix of retrieval queries and chat completions with few tokens. Then the audit
 * log must hold exactly one record per request sent, every response's record must be the
 * one it named, and the chain must verify.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/rag-load.js [--duration 60] [--clients 50]
 *       [--chat-share 0.3] [--max-tokens 8] [--timeout 120] [--threads 1] [--json]
 *       [--url http://127.0.0.1:PORT --audit-log PATH]
 *
 * Without --url it starts its own stack in a temp dir, as a host runs it: the llamacpp
 * runtime serving the generated tiny model (--threads, context 2048) and the RAG service
 * in front of it, and stops both at the end. With --url it loads a running service whose
 * audit log is readable here at --audit-log.
 *
 * With --chunks N it measures the embedded vector store alone, exact scan against the ANN
 * index (rag-index.ts): npm run bench:rag -- --chunks 1000000 --dimension 1024.
 *
 * Not a test: vitest never loads it. Bounded: each client has one request in flight, each
 * request a timeout, and no request starts after the deadline. Exit 0 when there was no
 * error and no audit record was lost, 1 otherwise.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { verifyAuditChain } from '../core/audit/verify-chain.js';
import { PROJECT_ROOT } from '../core/project-root.js';
import { generateTinyModel, TINY_MODEL } from '../core/tiny-model/generate.js';
import { runIndexBench } from './rag-index.js';

interface LoadOptions {
  durationS: number;
  clients: number;
  chatShare: number;
  maxTokens: number;
  timeoutS: number;
  threads: number;
  json: boolean;
  url?: string | undefined;
  auditLog?: string | undefined;
}

interface Sample {
  op: 'query' | 'chat';
  ms: number;
  status: number;
  seq: number | null;
  error?: string;
}

const USAGE = `usage: node dist/bench/rag-load.js [--duration 60] [--clients 50] [--chat-share 0.3] [--max-tokens 8]
                                  [--timeout 120] [--threads 1] [--json] [--url URL --audit-log PATH]`;

function readOptions(): LoadOptions {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '60' },
      clients: { type: 'string', default: '50' },
      'chat-share': { type: 'string', default: '0.3' },
      'max-tokens': { type: 'string', default: '8' },
      timeout: { type: 'string', default: '120' },
      threads: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
      url: { type: 'string' },
      'audit-log': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const number = (name: string, raw: string, min: number, max: number): number => {
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max) {
      console.error(`--${name} must be a number from ${min} to ${max}, got ${raw}\n${USAGE}`);
      process.exit(2);
    }
    return n;
  };
  if ((values.url === undefined) !== (values['audit-log'] === undefined)) {
    console.error(`--url and --audit-log go together\n${USAGE}`);
    process.exit(2);
  }
  return {
    durationS: number('duration', values.duration, 1, 3600),
    clients: Math.floor(number('clients', values.clients, 1, 1000)),
    chatShare: number('chat-share', values['chat-share'], 0, 1),
    maxTokens: Math.floor(number('max-tokens', values['max-tokens'], 1, 512)),
    timeoutS: number('timeout', values.timeout, 1, 3600),
    threads: Math.floor(number('threads', values.threads, 1, 256)),
    json: values.json,
    url: values.url,
    auditLog: values['audit-log'],
  };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

async function waitHealthy(url: string, what: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited ${child.exitCode}:\n${log()}`);
    const ok = await fetch(`${url}/health`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not become healthy in 60 s:\n${log()}`);
}

function spawnLogged(args: string[]): { child: ChildProcess; log: () => string } {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.on('data', (c: Buffer) => {
    log = (log + c.toString()).slice(-4000);
  });
  return { child, log: () => log };
}

/** Documents about hospital routine: enough distinct text for a few dozen chunks. */
function corpus(): Array<{ id: string; text: string }> {
  const subjects = [
    'visiting',
    'pharmacy',
    'parking',
    'radiology',
    'laboratory',
    'kitchen',
    'laundry',
    'records',
  ];
  const verbs = ['opens', 'closes', 'moves', 'is staffed', 'is cleaned', 'is inspected', 'reports', 'orders'];
  const times = [
    'at eight',
    'at noon',
    'on Mondays',
    'every night',
    'after rounds',
    'before surgery',
    'weekly',
  ];
  return subjects.map((subject, d) => {
    const paragraphs: string[] = [`# The ${subject} service`];
    for (let p = 0; p < 6; p++) {
      const sentences: string[] = [];
      for (let s = 0; s < 4; s++) {
        const verb = verbs[(d + p + s) % verbs.length];
        const time = times[(d * 3 + p * 2 + s) % times.length];
        sentences.push(`The ${subject} desk ${verb} ${time}, and section ${p}.${s} keeps its own log.`);
      }
      paragraphs.push(sentences.join(' '));
    }
    return { id: `load-${subject}`, text: paragraphs.join('\n\n') };
  });
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

function summarise(samples: Sample[]) {
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  return {
    requests: samples.length,
    errors: samples.filter((s) => s.status !== 200).length,
    p50Ms: Number(percentile(ms, 50).toFixed(1)),
    p95Ms: Number(percentile(ms, 95).toFixed(1)),
    p99Ms: Number(percentile(ms, 99).toFixed(1)),
    maxMs: Number((ms.at(-1) ?? 0).toFixed(1)),
  };
}

async function main(): Promise<number> {
  const options = readOptions();
  const started: ChildProcess[] = [];
  let tempDir: string | null = null;
  const cleanUp = async () => {
    for (const child of started) if (child.exitCode === null) child.kill('SIGTERM');
    await Promise.all(
      started.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)),
    );
    if (tempDir) await rm(tempDir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    void cleanUp().then(() => process.exit(130));
  });

  try {
    let url = options.url;
    let auditLog = options.auditLog;
    if (url === undefined) {
      tempDir = await mkdtemp(path.join(tmpdir(), 'apertus-rag-load-'));
      const modelPath = path.join(tempDir, TINY_MODEL.fileName);
      await writeFile(modelPath, generateTinyModel());
      const [runtimePort, ragPort] = [await freePort(), await freePort()];
      const runtime = spawnLogged([
        path.join(PROJECT_ROOT, 'templates', 'runtime', 'server.mjs'),
        ...['--model', modelPath, '--model-id', TINY_MODEL.id, '--threads', String(options.threads)],
        ...['--port', String(runtimePort), '--embeddings', '--context-size', '2048'],
      ]);
      started.push(runtime.child);
      await waitHealthy(`http://127.0.0.1:${runtimePort}`, 'the runtime', runtime.child, runtime.log);
      auditLog = path.join(tempDir, 'data', 'rag', 'audit.log');
      const ragService = spawnLogged([
        path.join(PROJECT_ROOT, 'templates', 'rag', 'server.mjs'),
        ...['--port', String(ragPort), '--data-dir', path.join(tempDir, 'data', 'rag')],
        ...['--runtime-url', `http://127.0.0.1:${runtimePort}`],
        ...['--embedding-model', TINY_MODEL.id, '--chat-model', TINY_MODEL.id],
        ...['--dimension', String(TINY_MODEL.embeddingLength)],
        ...['--chunk-size', '300', '--chunk-overlap', '50', '--top-k', '3', '--max-context-chars', '1200'],
      ]);
      started.push(ragService.child);
      url = `http://127.0.0.1:${ragPort}`;
      await waitHealthy(url, 'the RAG service', ragService.child, ragService.log);
    }

    // Setup requests go under their own caller; only the load's are counted below.
    const setupCaller = `load-setup-${randomBytes(4).toString('hex')}`;
    const passages: string[] = [];
    for (const document of corpus()) {
      const response = await fetch(`${url}/v1/documents`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-apertus-caller': setupCaller },
        body: JSON.stringify({ ...document, source: `${document.id}.md` }),
      });
      if (response.status !== 201 && response.status !== 200) {
        throw new Error(
          `ingesting ${document.id} answered HTTP ${response.status}: ${await response.text()}`,
        );
      }
    }
    for (const document of corpus()) {
      const response = await fetch(`${url}/v1/query`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-apertus-caller': setupCaller },
        body: JSON.stringify({ query: document.text.slice(0, 200), top_k: 5 }),
      });
      const body = (await response.json()) as { data: Array<{ text: string }> };
      passages.push(...body.data.map((hit) => hit.text));
    }

    const caller = `load-${randomBytes(6).toString('hex')}`;
    const samples: Sample[] = [];
    let inFlight = 0;
    let peakInFlight = 0;
    const loadStarted = Date.now();
    const deadline = loadStarted + options.durationS * 1000;
    let pick = 0;
    const client = async (index: number) => {
      let n = 0;
      while (Date.now() < deadline) {
        n += 1;
        const chat = ((index * 7919 + n * 104729) % 1000) / 1000 < options.chatShare;
        const passage = passages[pick++ % passages.length] as string;
        const body = chat
          ? {
              messages: [{ role: 'user', content: passage }],
              max_tokens: options.maxTokens,
              temperature: 0.7,
            }
          : { query: passage, top_k: 3 };
        const sample: Sample = { op: chat ? 'chat' : 'query', ms: 0, status: 0, seq: null };
        const t0 = performance.now();
        inFlight += 1;
        peakInFlight = Math.max(peakInFlight, inFlight);
        try {
          const response = await fetch(`${url}${chat ? '/v1/chat/completions' : '/v1/query'}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-apertus-caller': caller },
            body: JSON.stringify(body),
            signal: AbortSignal.timeout(options.timeoutS * 1000),
          });
          const text = await response.text();
          sample.status = response.status;
          const seq = response.headers.get('x-apertus-audit-seq');
          sample.seq = seq === null ? null : Number(seq);
          if (response.status !== 200) sample.error = text.slice(0, 200);
          else if (chat && !((JSON.parse(text) as { sources?: unknown[] }).sources?.length ?? 0)) {
            sample.status = -1;
            sample.error = 'chat answered without sources';
          }
        } catch (error) {
          sample.error = (error as Error).message;
        } finally {
          inFlight -= 1;
        }
        sample.ms = performance.now() - t0;
        samples.push(sample);
      }
    };
    await Promise.all(Array.from({ length: options.clients }, (_, i) => client(i)));
    const elapsedS = (Date.now() - loadStarted) / 1000;

    // The audit log, read while the service still runs: a record being written is left out.
    const log = await readFile(auditLog as string, 'utf8');
    const chain = verifyAuditChain(log, { allowIncompleteTail: true });
    const records = log
      .split('\n')
      .filter((line) => line.includes(`"caller":"${caller}"`))
      .map((line) => JSON.parse(line) as { seq: number; endpoint: string; status: number });
    const bySeq = new Map(records.map((r) => [r.seq, r]));
    const unmatched = samples.filter((s) => s.seq === null || !bySeq.has(s.seq)).length;

    const errors = samples.filter((s) => s.status !== 200);
    const report = {
      machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version },
      options: {
        durationS: options.durationS,
        clients: options.clients,
        chatShare: options.chatShare,
        maxTokens: options.maxTokens,
        threads: options.threads,
        target: options.url ?? 'own stack: tiny model on the llamacpp runtime + RAG service',
      },
      elapsedS: Number(elapsedS.toFixed(2)),
      peakInFlight,
      requestsPerSecond: Number((samples.length / elapsedS).toFixed(1)),
      all: summarise(samples),
      query: summarise(samples.filter((s) => s.op === 'query')),
      chat: summarise(samples.filter((s) => s.op === 'chat')),
      errorExamples: [...new Set(errors.map((e) => `${e.status}: ${e.error}`))].slice(0, 5),
      audit: {
        chainOk: chain.ok,
        firstBroken: chain.firstBroken ?? null,
        recordsInLog: chain.records,
        recordsForThisRun: records.length,
        requestsSent: samples.length,
        responsesWithoutTheirRecord: unmatched,
        lost: samples.length - records.length,
      },
    };
    const ok = errors.length === 0 && chain.ok && records.length === samples.length && unmatched === 0;
    if (options.json) console.log(JSON.stringify({ ok, ...report }, null, 2));
    else {
      const line = (name: string, s: ReturnType<typeof summarise>) =>
        `  ${name.padEnd(6)} ${String(s.requests).padStart(7)} requests  ${String(s.errors).padStart(4)} errors  p50 ${s.p50Ms} ms  p95 ${s.p95Ms} ms  p99 ${s.p99Ms} ms  max ${s.maxMs} ms`;
      console.log(
        [
          `RAG load: ${options.clients} clients for ${options.durationS} s (${report.options.target})`,
          `  machine ${report.machine.cpus} CPUs, ${report.machine.model}, Node ${report.machine.node}; runtime threads ${options.threads}`,
          `  ${report.requestsPerSecond} requests/s over ${report.elapsedS} s, peak ${peakInFlight} in flight`,
          line('all', report.all),
          line('query', report.query),
          line('chat', report.chat),
          ...report.errorExamples.map((e) => `  error: ${e}`),
          `  audit: ${records.length} records for ${samples.length} requests sent (${report.audit.lost} lost, ${unmatched} responses without their record); chain ${chain.ok ? `verifies (${chain.records} records)` : `BROKEN at line ${chain.firstBroken?.line}: ${chain.firstBroken?.reason}`}`,
          ok ? 'ok' : 'FAILED',
        ].join('\n'),
      );
    }
    return ok ? 0 : 1;
  } finally {
    await cleanUp();
  }
}

// `--chunks N` measures the embedded store alone at scale (rag-index.ts) instead of the service.
(process.argv.includes('--chunks') ? runIndexBench(process.argv.slice(2)) : main()).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exit(1);
  },
);
