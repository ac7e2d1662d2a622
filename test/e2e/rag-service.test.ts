/**
 * The RAG service (templates/rag/server.mjs) in front of the real llamacpp runtime serving
 * the generated tiny model, both on 127.0.0.1: ingest, exact retrieval, chat with sources,
 * delete, restart and crash recovery, the model lock, re-indexing, the install canary,
 * metrics, and an audit log with one verifying record per request, anchored in signed
 * checkpoints that catch a tail cut while the service is stopped. The weights are random:
 * answers are never compared, retrieval is (a passage's own text embeds to its own vector).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { appendFile, copyFile, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditVerify } from '../../src/core/audit/audit-verify.js';
import { verifyAuditChain } from '../../src/core/audit/verify-chain.js';
import { createLocalTransport } from '../../src/core/host/local-transport.js';
import { PROJECT_ROOT } from '../../src/core/project-root.js';
import { runRagCanary } from '../../src/core/runtimes/rag/canary.js';
import { ragDataPaths } from '../../src/core/runtimes/rag/rag-service.js';
import { generateKeyPair } from '../../src/core/sign/keys.js';
import { generateTinyModel, TINY_MODEL } from '../../src/core/tiny-model/generate.js';
import { chunkText, markdownToText } from '../../templates/rag/documents.mjs';

const RUNTIME_SERVER = path.join(PROJECT_ROOT, 'templates', 'runtime', 'server.mjs');
const RAG_SERVER = path.join(PROJECT_ROOT, 'templates', 'rag', 'server.mjs');
const CHUNK = { size: 300, overlap: 50 };

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

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

const children = new Set<ChildProcess>();

function start(script: string, args: string[]): Started {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let output = '';
  child.stdout?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  return { child, output: () => output, exited };
}

async function startRuntime(port: number, modelPath: string, modelId: string): Promise<Started> {
  const runtime = start(RUNTIME_SERVER, [
    '--model',
    modelPath,
    '--model-id',
    modelId,
    '--threads',
    '1',
    '--port',
    String(port),
    '--embeddings',
    '--context-size',
    '2048',
  ]);
  await waitFor('the runtime to load', async () =>
    (await fetch(`http://127.0.0.1:${port}/health`)).status === 200 ? true : undefined,
  );
  return runtime;
}

/** Prometheus text format 0.0.4: comments, and `name{labels} value` samples. */
function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const sample =
    /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*\})? (-?[0-9.e+-]+|\+Inf|NaN)$/;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const match = sample.exec(line);
    if (match === null) throw new Error(`not a Prometheus sample line: ${line}`);
    // Label order is the client library's choice; keys hold them sorted by name.
    const labels = (match[2] ?? '').replace(/^\{|,?\}$/g, '');
    const sorted =
      labels === ''
        ? ''
        : `{${(labels.match(/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"/g) ?? []).sort().join(',')}}`;
    samples.set(`${match[1]}${sorted}`, Number(match[3]));
  }
  return samples;
}

describe('RAG service over the llamacpp runtime (real inference on the tiny model)', () => {
  let base: string;
  let modelPath: string;
  let runtimePort: number;
  let ragPort: number;
  let dataDir: string;
  let auditLog: string;
  let runtime: Started;
  let rag: Started;
  /** Audited requests this test sent, in order, with the seq each response named. */
  const sent: Array<{ caller: string; method: string; endpoint: string; status: number; seq: number }> = [];
  const ragArgs = (overrides: Record<string, string> = {}, flags: string[] = []) => {
    const values: Record<string, string> = {
      port: String(ragPort),
      'data-dir': dataDir,
      'audit-log': auditLog,
      'runtime-url': `http://127.0.0.1:${runtimePort}`,
      'embedding-model': TINY_MODEL.id,
      'chat-model': TINY_MODEL.id,
      dimension: String(TINY_MODEL.embeddingLength),
      'chunk-size': String(CHUNK.size),
      'chunk-overlap': String(CHUNK.overlap),
      'top-k': '3',
      'max-context-chars': '1200',
      ...overrides,
    };
    return [...Object.entries(values).flatMap(([k, v]) => [`--${k}`, v]), ...flags];
  };
  const startRag = async (overrides: Record<string, string> = {}, flags: string[] = []) => {
    const started = start(RAG_SERVER, ragArgs(overrides, flags));
    const port = overrides.port ?? String(ragPort);
    await waitFor('the RAG service to report healthy', async () =>
      (await fetch(`http://127.0.0.1:${port}/health`)).status === 200 ? true : undefined,
    );
    return started;
  };
  const stopRag = async (signal: NodeJS.Signals = 'SIGTERM') => {
    rag.child.kill(signal);
    return rag.exited;
  };

  const call = async (method: string, route: string, body?: unknown, caller = 'tester') => {
    const response = await fetch(`http://127.0.0.1:${ragPort}${route}`, {
      method,
      headers: {
        'x-apertus-caller': caller,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await response.text();
    sent.push({
      caller,
      method,
      endpoint: route,
      status: response.status,
      seq: Number(response.headers.get('x-apertus-audit-seq')),
    });
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {}
    return { status: response.status, json: json as Record<string, unknown> & { data?: unknown[] }, text };
  };

  const guide = [
    '# Visitor guide',
    '',
    'Visiting hours on the surgical wards are from ten to twelve in the morning and from four to seven in the evening. Children under twelve visit with an adult.',
    '',
    'The pharmacy is on the second floor, next to the lifts. It opens at eight and closes at six; outside those hours the night nurse holds the key to the emergency cabinet.',
    '',
    '## Parking',
    '',
    'Patients and visitors park in the north car park. The first hour is free; after that the barrier takes cards only. Ambulances use the south gate and must never be blocked.',
    '',
    'Bicycles go in the shelter by the main entrance, which is covered and watched by a camera at night.',
  ].join('\n');
  const guideChunks = chunkText(markdownToText(guide).text, CHUNK);
  const page =
    '<!doctype html><html><head><title>Radiology</title><script>track("<p>x</p>")</script></head>' +
    '<body><h1>Radiology</h1><p>Scans are booked through the ward clerk; bring the referral letter.</p></body></html>';
  const pagePassage = 'Radiology\n\nScans are booked through the ward clerk; bring the referral letter.';

  beforeAll(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'apertus-rag-e2e-'));
    modelPath = path.join(base, TINY_MODEL.fileName);
    await writeFile(modelPath, generateTinyModel());
    [runtimePort, ragPort] = [await freePort(), await freePort()];
    dataDir = path.join(base, 'data', 'rag');
    auditLog = path.join(dataDir, 'audit.log');
    runtime = await startRuntime(runtimePort, modelPath, TINY_MODEL.id);
    rag = await startRag();
  });

  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('is healthy with the runtime answering, and /health is not audited', async () => {
    const health = await fetch(`http://127.0.0.1:${ragPort}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({
      status: 'ok',
      store: 'file',
      embeddingModel: TINY_MODEL.id,
      dimension: TINY_MODEL.embeddingLength,
      documents: 0,
      auditSeq: 0,
    });
  });

  it('ingests Markdown and HTML into chunks', async () => {
    expect(guideChunks.length).toBeGreaterThanOrEqual(3);
    const md = await call('POST', '/v1/documents', { id: 'guide', source: 'guide.md', text: guide });
    expect(md.status).toBe(201);
    expect(md.json).toMatchObject({
      id: 'guide',
      title: 'Visitor guide',
      format: 'markdown',
      chunks: guideChunks.length,
    });
    const html = await call('POST', '/v1/documents', {
      id: 'radiology',
      source: 'http://intranet/radiology.html',
      text: page,
    });
    expect(html.status).toBe(201);
    expect(html.json).toMatchObject({ id: 'radiology', title: 'Radiology', format: 'html', chunks: 1 });
    const replaced = await call('POST', '/v1/documents', { id: 'radiology', format: 'html', text: page });
    expect(replaced.status).toBe(200);
    expect(replaced.json.replaced).toBe(true);

    const list = await call('GET', '/v1/documents');
    expect((list.json.data as Array<{ id: string; chunks: number }>).map((d) => [d.id, d.chunks])).toEqual([
      ['guide', guideChunks.length],
      ['radiology', 1],
    ]);
  });

  it('retrieves the passage whose exact text is asked, with its source', async () => {
    for (const [index, passage] of guideChunks.entries()) {
      const result = await call('POST', '/v1/query', { query: passage, top_k: 3 });
      expect(result.status).toBe(200);
      const hits = result.json.data as Array<{
        document: string;
        chunk: number;
        score: number;
        text: string;
      }>;
      expect(hits).toHaveLength(3);
      expect(hits[0]).toMatchObject({ document: 'guide', chunk: index, text: passage, source: 'guide.md' });
      expect(hits[0]?.score).toBeGreaterThan(0.999);
      expect(hits[1]?.score).toBeLessThan(hits[0]?.score as number);
    }
    const html = await call('POST', '/v1/query', { query: pagePassage });
    expect((html.json.data as Array<{ document: string; text: string }>)[0]).toMatchObject({
      document: 'radiology',
      text: pagePassage,
    });
    expect(html.text).not.toContain('track(');
  });

  it('answers chat through the runtime with the retrieved passages as numbered sources', async () => {
    const chat = await call('POST', '/v1/chat/completions', {
      model: TINY_MODEL.id,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: guideChunks[1] },
      ],
      max_tokens: 6,
      temperature: 0,
    });
    expect(chat.status).toBe(200);
    const body = chat.json as {
      object: string;
      model: string;
      choices: Array<{ message: { role: string; content: string } }>;
      usage: { prompt_tokens: number; completion_tokens: number };
      sources: Array<{ index: number; document: string; chunk: number; score: number }>;
    };
    expect(body.object).toBe('chat.completion');
    expect(body.model).toBe(TINY_MODEL.id);
    expect(body.choices[0]?.message.role).toBe('assistant');
    expect(body.usage.completion_tokens).toBeGreaterThanOrEqual(1);
    // The prompt carries the passages: far more tokens than the question alone.
    expect(body.usage.prompt_tokens).toBeGreaterThan(300);
    expect(body.sources[0]).toMatchObject({ index: 1, document: 'guide', chunk: 1 });
    expect(body.sources[0]?.score).toBeGreaterThan(0.999);
    expect(body.sources.map((s) => s.index)).toEqual(body.sources.map((_, i) => i + 1));

    const stream = await call('POST', '/v1/chat/completions', {
      messages: [{ role: 'user', content: pagePassage }],
      max_tokens: 4,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(stream.status).toBe(200);
    const events = stream.text
      .split('\n\n')
      .filter((e) => e.startsWith('data: '))
      .map((e) => e.slice(6));
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as { object: string; sources?: unknown[] });
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks.find((c) => c.sources)?.sources?.[0]).toMatchObject({ document: 'radiology', chunk: 0 });
  });

  it('answers bad requests with JSON errors, audited like the rest', async () => {
    expect((await call('GET', '/v1/nothing')).status).toBe(404);
    expect((await call('PUT', '/v1/documents')).status).toBe(405);
    expect((await call('POST', '/v1/query', '{not json')).status).toBe(400);
    expect((await call('POST', '/v1/documents', { id: '../etc', text: 'x' })).status).toBe(400);
    const empty = await call('POST', '/v1/documents', { format: 'html', text: '<script>only()</script>' });
    expect(empty.status).toBe(400);
    expect((empty.json.error as { message: string }).message).toContain('holds no text');
    expect(
      (await call('POST', '/v1/chat/completions', { messages: [{ role: 'system', content: 'x' }] })).status,
    ).toBe(400);
  });

  it('serves concurrent queries, each with its own audit record', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        call('POST', '/v1/query', { query: guideChunks[i % guideChunks.length], top_k: 1 }, `client-${i}`),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(new Array(20).fill(200));
    results.forEach((r, i) => {
      expect((r.json.data as Array<{ chunk: number }>)[0]?.chunk).toBe(i % guideChunks.length);
    });
  });

  it('passes the install canary: marker ingested, retrieved, cited, deleted', async () => {
    const check = await runRagCanary(createLocalTransport(), { port: ragPort, service: 'rag' });
    expect(check).toMatchObject({ id: 'verify.rag-canary', service: 'rag', status: 'ok' });
    expect(check.detail).toMatch(/retrieved at rank 1 \(score 1\.000\), cited, deleted/);
    // Its four requests are audited too: ingest, chat, delete, query.
    for (const endpoint of ['/v1/documents', '/v1/chat/completions', '/v1/documents/', '/v1/query']) {
      sent.push({ caller: 'apertus-install-canary', method: '', endpoint, status: 0, seq: 0 });
    }
    const list = await call('GET', '/v1/documents');
    expect((list.json.data as Array<{ id: string }>).map((d) => d.id)).toEqual(['guide', 'radiology']);
  });

  it('fails the canary, while healthy, when queries and passages are embedded differently', async () => {
    const port = await freePort();
    const misconfigured = await startRag(
      {
        port: String(port),
        'data-dir': path.join(base, 'prefixed'),
        'audit-log': path.join(base, 'prefixed.log'),
      },
      ['--query-prefix', 'query: '],
    );
    const check = await runRagCanary(createLocalTransport(), { port });
    expect(check.status).toBe('fail');
    expect(check.detail).toMatch(/cited with score|not among the \d+ sources/);
    const left = (await (await fetch(`http://127.0.0.1:${port}/v1/documents`)).json()) as { data: unknown[] };
    expect(left.data).toEqual([]);
    misconfigured.child.kill('SIGTERM');
    expect(await misconfigured.exited).toBe(0);
  });

  it('deletes a document: gone from the list, from retrieval and by id', async () => {
    expect((await call('DELETE', '/v1/documents/radiology')).json).toEqual({
      id: 'radiology',
      object: 'document',
      deleted: true,
    });
    expect((await call('DELETE', '/v1/documents/radiology')).status).toBe(404);
    expect((await call('GET', '/v1/documents/radiology')).status).toBe(404);
    const hits = (await call('POST', '/v1/query', { query: pagePassage, top_k: 5 })).json.data as Array<{
      document: string;
    }>;
    expect(hits.map((h) => h.document)).not.toContain('radiology');
    expect((await call('GET', '/v1/documents/guide')).json).toMatchObject({
      id: 'guide',
      chunks: guideChunks.length,
    });
  });

  it('exposes Prometheus metrics: requests by route and status, latency, documents, audit records', async () => {
    const response = await fetch(`http://127.0.0.1:${ragPort}/metrics`);
    expect(response.headers.get('content-type')).toContain('text/plain; version=0.0.4');
    const samples = parsePrometheus(await response.text());
    expect(
      samples.get('apertus_rag_requests_total{endpoint="/v1/query",method="POST",status="200"}'),
    ).toBeGreaterThan(20);
    expect(
      samples.get('apertus_rag_requests_total{endpoint="/v1/documents/:id",method="DELETE",status="404"}'),
    ).toBe(1);
    expect(samples.get('apertus_rag_request_duration_seconds_count{endpoint="/v1/query"}')).toBe(
      samples.get('apertus_rag_request_duration_seconds_bucket{endpoint="/v1/query",le="+Inf"}'),
    );
    expect(samples.get('apertus_rag_documents')).toBe(1);
    expect(samples.get('apertus_rag_chunks')).toBe(guideChunks.length);
    expect(samples.get('apertus_rag_audit_records_total')).toBe(sent.length);
    expect(samples.get('apertus_rag_audit_last_seq')).toBe(sent.length);
    expect(samples.get('apertus_rag_runtime_up')).toBe(1);
  });

  it('wrote one verifying audit record per request, before each response', async () => {
    const text = await readFile(auditLog, 'utf8');
    const result = verifyAuditChain(text);
    expect(result).toMatchObject({ ok: true, records: sent.length, lastSeq: sent.length });
    const records = text
      .trim()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as {
            seq: number;
            caller: string;
            endpoint: string;
            status: number;
            documents: string[];
          },
      );
    // Each response named the record written for it (the canary's were not seen here).
    for (const request of sent.filter((s) => s.seq > 0)) {
      const record = records[request.seq - 1];
      expect(record).toMatchObject({
        seq: request.seq,
        caller: request.caller,
        endpoint: request.endpoint,
        status: request.status,
      });
    }
    expect(new Set(sent.filter((s) => s.seq > 0).map((s) => s.seq)).size).toBe(
      sent.filter((s) => s.seq > 0).length,
    );
    expect(records.filter((r) => r.caller === 'apertus-install-canary')).toHaveLength(4);
    expect(
      records.find((r) => r.endpoint === '/v1/documents/radiology' && r.status === 200)?.documents,
    ).toEqual(['radiology']);
    const firstQuery = records.find((r) => r.endpoint === '/v1/query');
    expect(firstQuery?.documents[0]).toBe('guide');
  });

  it('names the edited record when one byte of the log changes', async () => {
    const copy = path.join(base, 'audit-tampered.log');
    await copyFile(auditLog, copy);
    const text = await readFile(copy, 'utf8');
    const lines = text.split('\n');
    lines[6] = (lines[6] as string).replace('"status":', '"status":9');
    await writeFile(copy, lines.join('\n'));
    const result = verifyAuditChain(await readFile(copy, 'utf8'));
    expect(result).toMatchObject({
      ok: false,
      records: 6,
      firstBroken: { line: 7, seq: 7, reason: 'hash-mismatch' },
    });
    const overTransport = await auditVerify({ target: { kind: 'local' }, logPath: copy });
    expect(overTransport.firstBroken).toMatchObject({ line: 7, seq: 7 });
  });

  it('keeps its documents and continues the audit chain after a restart', async () => {
    expect(await stopRag()).toBe(0);
    rag = await startRag();
    const list = await call('GET', '/v1/documents');
    expect((list.json.data as Array<{ id: string }>).map((d) => d.id)).toEqual(['guide']);
    const hits = (await call('POST', '/v1/query', { query: guideChunks[2], top_k: 1 })).json.data as Array<{
      chunk: number;
      score: number;
    }>;
    expect(hits[0]?.chunk).toBe(2);
    expect(hits[0]?.score).toBeGreaterThan(0.999);
    expect(sent.at(-1)?.seq).toBe(sent.length);
    expect(verifyAuditChain(await readFile(auditLog, 'utf8'))).toMatchObject({
      ok: true,
      records: sent.length,
    });
  });

  it('recovers from a hard kill that left torn writes in the store and the audit log', async () => {
    expect(await stopRag('SIGKILL')).toBeNull();
    await appendFile(path.join(dataDir, 'gen-1', 'records.jsonl'), '{"op":"put","id":"half');
    await appendFile(path.join(dataDir, 'gen-1', 'vectors.f32'), Buffer.alloc(100, 7));
    await appendFile(auditLog, `{"seq":${sent.length + 1},"time":"20`);
    rag = await startRag();
    expect(rag.output()).toMatch(/cut \d+ bytes of a record torn by a crash/);
    const ingest = await call('POST', '/v1/documents', {
      id: 'after-crash',
      text: 'Written after the crash.',
    });
    expect(ingest.status).toBe(201);
    expect(ingest.json.chunks).toBe(1);
    expect(((await call('GET', '/v1/documents')).json.data as unknown[]).length).toBe(2);
    expect(verifyAuditChain(await readFile(auditLog, 'utf8'))).toMatchObject({
      ok: true,
      records: sent.length,
    });
  });

  it('refuses to start on a collection locked to another embedding model or dimension', async () => {
    expect(await stopRag()).toBe(0);
    const otherPort = String(await freePort());
    for (const overrides of [{ dimension: '32' }, { 'embedding-model': 'bge-m3' }]) {
      const refused = start(RAG_SERVER, ragArgs({ port: otherPort, ...overrides }));
      expect(await refused.exited).toBe(2);
      const message = refused.output();
      expect(message).toContain(
        `locked to embedding model "${TINY_MODEL.id}" (dimension ${TINY_MODEL.embeddingLength})`,
      );
      expect(message).toContain(
        `--embedding-model "${overrides['embedding-model'] ?? TINY_MODEL.id}" --dimension ${overrides.dimension ?? TINY_MODEL.embeddingLength}`,
      );
      expect(message).toContain('--reindex');
    }
  });

  it('is unhealthy when the runtime embeds with another model, and re-indexes to it on --reindex', async () => {
    const otherRuntimePort = await freePort();
    const other = await startRuntime(otherRuntimePort, modelPath, 'tiny-b');
    const otherUrl = `http://127.0.0.1:${otherRuntimePort}`;
    // Locked to the tiny model, but pointed at a runtime serving tiny-b.
    const mismatched = start(RAG_SERVER, ragArgs({ 'runtime-url': otherUrl }));
    const health = await waitFor('an answer from /health', async () => {
      const response = await fetch(`http://127.0.0.1:${ragPort}/health`);
      return {
        status: response.status,
        body: (await response.json()) as { status: string; detail?: string },
      };
    });
    expect(health.status).toBe(503);
    // The runtime refuses a model it does not serve (404 model_not_found), and says which it serves.
    expect(health.body.detail).toContain(
      `does not serve "${TINY_MODEL.id}", the embedding model the collection is locked to`,
    );
    expect(health.body.detail).toContain('tiny-b');
    mismatched.child.kill('SIGTERM');
    expect(await mismatched.exited).toBe(0);

    rag = await startRag({ 'runtime-url': otherUrl, 'embedding-model': 'tiny-b' }, ['--reindex']);
    expect(rag.output()).toMatch(/re-indexed 2 documents \(\d+ chunks\) with tiny-b/);
    const collection = JSON.parse(await readFile(path.join(dataDir, 'collection.json'), 'utf8'));
    expect(collection).toMatchObject({ embeddingModel: 'tiny-b', dimension: TINY_MODEL.embeddingLength });
    const hits = (await call('POST', '/v1/query', { query: guideChunks[0], top_k: 1 })).json.data as Array<{
      document: string;
      chunk: number;
    }>;
    expect(hits[0]).toMatchObject({ document: 'guide', chunk: 0 });
    expect(await stopRag()).toBe(0);
    other.child.kill('SIGTERM');
    await other.exited;
    expect(verifyAuditChain(await readFile(auditLog, 'utf8'))).toMatchObject({
      ok: true,
      records: sent.length,
    });
    runtime.child.kill('SIGTERM');
    await runtime.exited;
  });
});

describe('RAG audit checkpoints: a tail cut while the service is stopped is caught', () => {
  let base: string;
  let root: string;
  let paths: ReturnType<typeof ragDataPaths>;
  let runtimePort: number;
  let ragPort: number;
  let runtime: Started;
  const args = () => [
    '--port',
    String(ragPort),
    '--data-dir',
    paths.dataDir,
    '--audit-log',
    paths.auditLog,
    '--runtime-url',
    `http://127.0.0.1:${runtimePort}`,
    '--embedding-model',
    TINY_MODEL.id,
    '--chat-model',
    TINY_MODEL.id,
    '--dimension',
    String(TINY_MODEL.embeddingLength),
    '--checkpoint-key',
    path.join(root, 'keys', 'host.key'),
    '--checkpoint-every',
    '4',
  ];
  const startRag = async () => {
    const rag = start(RAG_SERVER, args());
    await waitFor('the RAG service to report healthy', async () =>
      (await fetch(`http://127.0.0.1:${ragPort}/health`)).status === 200 ? true : undefined,
    );
    return rag;
  };
  const request = async (method: string, route: string, body?: unknown) => {
    const response = await fetch(`http://127.0.0.1:${ragPort}${route}`, {
      method,
      headers: { 'x-apertus-caller': 'auditor', 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    await response.text();
    return Number(response.headers.get('x-apertus-audit-seq'));
  };
  const checkpointLines = async () =>
    (await readFile(paths.auditCheckpoints, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number; reason: string });

  beforeAll(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'apertus-rag-checkpoints-'));
    root = path.join(base, 'root');
    paths = ragDataPaths(root);
    // The host key pair as the install lays it out.
    await generateKeyPair(path.join(root, 'keys', 'host'));
    const modelPath = path.join(base, TINY_MODEL.fileName);
    await writeFile(modelPath, generateTinyModel());
    [runtimePort, ragPort] = [await freePort(), await freePort()];
    runtime = await startRuntime(runtimePort, modelPath, TINY_MODEL.id);
  });

  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('anchors the log every N records and at SIGTERM, and audit verify holds it to them', async () => {
    const rag = await startRag();
    expect(rag.output()).toMatch(/checkpoints signed by [0-9A-F]{16} every 4 records/);
    await request('POST', '/v1/documents', { id: 'policy', text: 'Visitors sign in at the front desk.' });
    for (let i = 0; i < 4; i++) await request('POST', '/v1/query', { query: 'where do visitors sign in?' });
    expect(await request('GET', '/v1/documents')).toBe(6);
    rag.child.kill('SIGTERM');
    expect(await rag.exited).toBe(0);
    expect((await checkpointLines()).map((c) => [c.seq, c.reason])).toEqual([
      [4, 'periodic'],
      [6, 'shutdown'],
    ]);
    const result = await auditVerify({ target: { kind: 'local' }, root });
    expect(result).toMatchObject({
      ok: true,
      records: 6,
      checkpoints: { status: 'ok', count: 2, verified: 2, last: { seq: 6, reason: 'shutdown' } },
    });
  });

  it('anchors at restart what a killed run wrote', async () => {
    const killed = await startRag();
    expect(await request('GET', '/v1/documents')).toBe(7);
    expect(await request('GET', '/v1/documents/policy')).toBe(8);
    killed.child.kill('SIGKILL');
    await killed.exited;
    const rag = await startRag();
    expect((await checkpointLines()).at(-1)).toEqual(expect.objectContaining({ seq: 8, reason: 'open' }));
    expect(await request('POST', '/v1/query', { query: 'front desk' })).toBe(9);
    rag.child.kill('SIGTERM');
    expect(await rag.exited).toBe(0);
    expect(await auditVerify({ target: { kind: 'local' }, root })).toMatchObject({
      ok: true,
      records: 9,
      checkpoints: { status: 'ok', last: { seq: 9, reason: 'shutdown' } },
    });
  });

  it('fails audit verify naming the records gone, and the service refuses to restart', async () => {
    const lines = (await readFile(paths.auditLog, 'utf8')).split('\n');
    await writeFile(
      paths.auditLog,
      lines
        .slice(0, 6)
        .map((l) => `${l}\n`)
        .join(''),
    );

    const result = await auditVerify({ target: { kind: 'local' }, root });
    expect(result).toMatchObject({ ok: false, records: 6, checkpoints: { status: 'tail-missing' } });
    expect(result.checkpoints?.detail).toMatch(
      /^records after seq 6 are gone: the last checkpoint \(shutdown, time .*\) anchors seq 9 with hash [0-9a-f]{64}$/,
    );

    const refused = start(RAG_SERVER, args());
    expect(await refused.exited).toBe(1);
    expect(refused.output()).toMatch(
      /audit\.log ends at seq 6, but the last checkpoint .* anchors seq 9 .*: records 7 to 9 are gone/,
    );
    expect(refused.output()).toContain('move both aside');
    // The evidence is left as it was.
    expect((await readFile(paths.auditLog, 'utf8')).split('\n')).toHaveLength(7);

    // Moved aside, the service starts a new chain.
    await rename(paths.auditLog, `${paths.auditLog}.damaged`);
    await rename(paths.auditCheckpoints, `${paths.auditCheckpoints}.damaged`);
    const fresh = await startRag();
    expect(await request('GET', '/v1/documents')).toBe(1);
    fresh.child.kill('SIGTERM');
    expect(await fresh.exited).toBe(0);
    runtime.child.kill('SIGTERM');
    await runtime.exited;
  });
});
