/**
 * The gateway (templates/gateway/server.mjs) over TLS in front of the real runtime server on
 * the tiny model and the real RAG service, all on loopback, spoken to with the official
 * `openai` SDK: keys, scopes, revocation without a restart, rate limit, body limit,
 * streaming, the caller in the RAG audit record and in the gateway's own access log.
 * The weights are random: answers are never compared, shapes and counts are.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import OpenAI, { AuthenticationError, NotFoundError, PermissionDeniedError, RateLimitError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAuditChain } from '../../src/core/audit/verify-chain.js';
import { generateTinyModel, TINY_MODEL } from '../../src/core/tiny-model/generate.js';
import {
  fetchTrusting,
  freePort,
  type Gateway,
  makeTestCertificates,
  newKey,
  type Started,
  startGateway,
  startRag,
  startRuntime,
  type TestKey,
  writeKeyFile,
} from '../helpers/gateway-stack.js';

let base: string;
let runtime: Started;
let rag: Started;
let gateway: Gateway;
let ca: Buffer;
let keyFile: string;
let accessLog: string;
let ragDataDir: string;
let tokenFile: string;
const keys: Record<string, TestKey> = {};

const client = (apiKey: string | undefined, baseSuffix = '/v1', maxRetries = 0) =>
  new OpenAI({
    apiKey: apiKey ?? 'none',
    baseURL: `${gateway.url}${baseSuffix}`,
    fetch: fetchTrusting(ca),
    maxRetries,
    ...(apiKey === undefined ? { defaultHeaders: { authorization: null } } : {}),
  });

beforeAll(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'apertus-gateway-'));
  const modelPath = path.join(base, TINY_MODEL.fileName);
  await writeFile(modelPath, generateTinyModel());
  const runtimePort = await freePort();
  runtime = await startRuntime(runtimePort, modelPath);
  tokenFile = path.join(base, 'gateway.token');
  await writeFile(tokenFile, randomBytes(32).toString('base64url'), { mode: 0o600 });
  ragDataDir = path.join(base, 'rag');
  const ragPort = await freePort();
  rag = await startRag(ragPort, runtimePort, ragDataDir, ['--gateway-token-file', tokenFile]);

  const certs = await makeTestCertificates(base);
  ca = await readFile(certs.ca);
  keys.all = newKey('alice', ['chat', 'embeddings', 'rag']);
  keys.embedOnly = newKey('embedder', ['embeddings']);
  keys.revoked = newKey('bob', ['chat']);
  keys.limited = newKey('hammer', ['chat']);
  keys.admin = newKey('ops', ['admin']);
  keyFile = path.join(base, 'api-keys.json');
  await writeKeyFile(keyFile, Object.values(keys));
  accessLog = path.join(base, 'gateway', 'access.log');
  gateway = await startGateway([
    ...['--tls-cert', certs.cert, '--tls-key', certs.key, '--keys', keyFile, '--access-log', accessLog],
    ...['--upstream', `${TINY_MODEL.id}=http://127.0.0.1:${runtimePort}`],
    ...['--rag', `default=http://127.0.0.1:${ragPort}`, '--gateway-token-file', tokenFile],
    ...['--rate', '2', '--burst', '40', '--max-body-bytes', String(1024 * 1024)],
  ]);
});

afterAll(async () => {
  await gateway?.stop();
  await rag?.stop();
  await runtime?.stop();
  if (base) await rm(base, { recursive: true, force: true });
});

describe('the gateway in front of the runtime and the RAG service', () => {
  it('serves chat, streaming chat, embeddings and the model list over TLS with a key', async () => {
    const openai = client(keys.all?.key);
    const models = await openai.models.list();
    expect(models.data.map((m) => m.id).sort()).toEqual([TINY_MODEL.id, 'rag:default']);

    const chat = await openai.chat.completions.create({
      model: TINY_MODEL.id,
      messages: [{ role: 'user', content: 'hello' }],
      max_tokens: 4,
    });
    expect(chat.object).toBe('chat.completion');
    expect(chat.choices).toHaveLength(1);

    const stream = await openai.chat.completions.create({
      model: TINY_MODEL.id,
      messages: [{ role: 'user', content: 'hello' }],
      max_tokens: 4,
      stream: true,
    });
    let chunks = 0;
    for await (const chunk of stream) {
      expect(chunk.object).toBe('chat.completion.chunk');
      chunks += 1;
    }
    expect(chunks).toBeGreaterThan(1);

    const embeddings = await openai.embeddings.create({ model: TINY_MODEL.id, input: ['one', 'two'] });
    expect(embeddings.data).toHaveLength(2);
    expect(embeddings.data[0]?.embedding).toHaveLength(TINY_MODEL.embeddingLength);
  });

  it('frees the upstream slot when a client leaves in the middle of a stream', async () => {
    const openai = client(keys.all?.key);
    const stream = await openai.chat.completions.create({
      model: TINY_MODEL.id,
      messages: [{ role: 'user', content: 'talk' }],
      max_tokens: 1500,
      stream: true,
    });
    for await (const _ of stream) break;
    const inFlight = async () =>
      /^apertus_gateway_in_flight (\d+)$/m.exec(await (await fetch(gateway.metricsUrl)).text())?.[1];
    let last: string | undefined;
    for (let i = 0; i < 100 && last !== '0'; i++) {
      last = await inFlight();
      if (last !== '0') await new Promise((r) => setTimeout(r, 100));
    }
    expect(last).toBe('0');
    expect((await openai.models.list()).data.length).toBe(2);
  });

  it('answers no key, a wrong key and a revoked key with 401 invalid_api_key', async () => {
    const attempt = (apiKey: string | undefined) =>
      client(apiKey)
        .embeddings.create({ model: TINY_MODEL.id, input: 'x' })
        .then(
          () => null,
          (e: unknown) => e,
        );
    const noKey = await attempt(undefined);
    expect(noKey).toBeInstanceOf(AuthenticationError);
    expect((noKey as AuthenticationError).code).toBe('invalid_api_key');
    const wrong = await attempt(newKey('nobody', ['chat']).key);
    expect(wrong).toBeInstanceOf(AuthenticationError);
    expect((wrong as AuthenticationError).error).toMatchObject({
      type: 'invalid_request_error',
      code: 'invalid_api_key',
    });

    // Works, then is revoked in the file; the running gateway refuses it on the next request.
    const bob = keys.revoked as TestKey;
    await client(bob.key).models.list();
    bob.revoked = '2026-01-02T00:00:00.000Z';
    await writeKeyFile(keyFile, Object.values(keys));
    const revoked = await attempt(bob.key);
    expect(revoked).toBeInstanceOf(AuthenticationError);
    expect((revoked as AuthenticationError).message).toContain('revoked');
  });

  it('answers a key scoped to embeddings with 403 on chat, and an unknown model with 404', async () => {
    const embedder = client(keys.embedOnly?.key);
    expect((await embedder.embeddings.create({ model: TINY_MODEL.id, input: 'x' })).data).toHaveLength(1);
    const denied = await embedder.chat.completions
      .create({ model: TINY_MODEL.id, messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(PermissionDeniedError);
    expect((denied as PermissionDeniedError).message).toContain('chat');
    const unknown = await client(keys.all?.key)
      .chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(NotFoundError);
    expect((unknown as NotFoundError).code).toBe('model_not_found');
  });

  it('puts the key name, not a client-sent caller header, into the RAG audit record', async () => {
    const response = await fetchTrusting(ca)(`${gateway.url}/rag/default/v1/documents`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${keys.all?.key}`,
        'content-type': 'application/json',
        'x-apertus-caller': 'mallory',
      },
      body: JSON.stringify({ id: 'doc-1', text: 'The gateway sends the key name upstream.' }),
    });
    expect(response.status).toBe(201);
    const seq = Number(response.headers.get('x-apertus-audit-seq'));
    const records = (await readFile(path.join(ragDataDir, 'audit.log'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(records.find((r) => r.seq === seq)).toMatchObject({
      caller: 'alice',
      endpoint: '/v1/documents',
      status: 201,
    });

    // A local client that talks to the RAG service directly only claims a name.
    const ragUrl = /--port (\d+)/.exec(rag.child.spawnargs.join(' '))?.[1];
    const direct = await fetch(`http://127.0.0.1:${ragUrl}/v1/documents`, {
      headers: { 'x-apertus-caller': 'alice' },
    });
    const directSeq = Number(direct.headers.get('x-apertus-audit-seq'));
    const after = (await readFile(path.join(ragDataDir, 'audit.log'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(after.find((r) => r.seq === directSeq)?.caller).toBe('claimed:alice');
    const guessed = await fetch(`http://127.0.0.1:${ragUrl}/v1/documents`, {
      headers: { 'x-apertus-caller': 'alice', 'x-apertus-gateway': 'a'.repeat(43) },
    });
    const guessedSeq = Number(guessed.headers.get('x-apertus-audit-seq'));
    const last = (await readFile(path.join(ragDataDir, 'audit.log'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(last.find((r) => r.seq === guessedSeq)?.caller).toBe('claimed:alice');

    // RAG chat through the model id rag:default, with its sources.
    const answer = await client(keys.all?.key).chat.completions.create({
      model: 'rag:default',
      messages: [{ role: 'user', content: 'What does the gateway send upstream?' }],
      max_tokens: 4,
    });
    expect((answer as unknown as { sources: unknown[] }).sources.length).toBeGreaterThan(0);
  });

  it('refuses paths that would climb out of a route upstream, and never forwards the key', async () => {
    // Raw paths: fetch and URL would resolve the dot segments before sending them.
    const get = (p: string) =>
      new Promise<number>((resolve, reject) => {
        const url = new URL(gateway.url);
        httpsRequest(
          {
            host: url.hostname,
            port: url.port,
            path: p,
            ca,
            headers: { authorization: `Bearer ${keys.all?.key}` },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        )
          .once('error', reject)
          .end();
      });
    for (const p of [
      '/rag/default/v1/../../metrics',
      '/v1/documents/%2e%2e/%2e%2e/metrics',
      '/rag/default/v1/..%2fhealth',
    ])
      expect(await get(p), p).toBe(400);
    expect(await get('/rag/nope/v1/documents')).toBe(404);
    expect(await get('/v1/documents')).toBe(200);
    expect(rag.output()).not.toContain(keys.all?.key);
  });

  it('answers a body over the limit with 413 and keeps answering', async () => {
    const status = await new Promise<string>((resolve, reject) => {
      const url = new URL(gateway.url);
      const socket = tlsConnect(
        { host: url.hostname, port: Number(url.port), ca, servername: 'localhost' },
        () => {
          socket.write(
            `POST /v1/embeddings HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${keys.all?.key}\r\n` +
              `content-type: application/json\r\ncontent-length: ${200 * 1024 * 1024}\r\n\r\n`,
          );
          const chunk = Buffer.alloc(64 * 1024, 0x20);
          const pump = () => {
            while (!socket.destroyed && socket.write(chunk)) {}
          };
          socket.on('drain', pump);
          pump();
        },
      );
      let text = '';
      socket.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('\r\n\r\n')) {
          socket.destroy();
          resolve(text.split('\r\n')[0] ?? '');
        }
      });
      socket.on('error', reject);
    });
    expect(status).toBe('HTTP/1.1 413 Payload Too Large');
    const models = await client(keys.all?.key).models.list();
    expect(models.data.length).toBe(2);
  });

  it('limits requests without a valid key per address, and stops logging them beyond it', async () => {
    const before = (await readFile(accessLog, 'utf8')).trim().split('\n').length;
    const statuses: number[] = [];
    for (let i = 0; i < 45; i++)
      statuses.push(
        (
          await fetchTrusting(ca)(`${gateway.url}/v1/models`, {
            headers: { authorization: 'Bearer apk-nope' },
          })
        ).status,
      );
    expect(statuses).toContain(401);
    expect(statuses.at(-1)).toBe(429);
    await new Promise((r) => setTimeout(r, 200));
    const after = (await readFile(accessLog, 'utf8')).trim().split('\n').length;
    expect(after - before).toBe(statuses.filter((s) => s === 401).length);
    const metricsText = await (await fetch(gateway.metricsUrl)).text();
    expect(metricsText).toMatch(
      /apertus_gateway_auth_failures_total\{reason="malformed"\} (4[5-9]|[5-9][0-9])/,
    );
  });

  it('answers a key over its rate with 429 and Retry-After', async () => {
    const hammer = client(keys.limited?.key);
    let limited: unknown = null;
    for (let i = 0; i < 60 && limited === null; i++)
      await hammer.models.list().catch((e: unknown) => (limited = e));
    expect(limited).toBeInstanceOf(RateLimitError);
    expect(Number((limited as RateLimitError).headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // Other keys are not held back by it.
    expect((await client(keys.admin?.key).models.list()).data.length).toBe(2);
  });

  it('serves metrics on loopback and to admin keys only, and keeps a verifiable access log', async () => {
    const text = await (await fetch(gateway.metricsUrl)).text();
    expect(text).toMatch(
      /apertus_gateway_requests_total\{key="alice",route="\/v1\/chat\/completions",status="200"\} [1-9]/,
    );
    expect(text).toMatch(/apertus_gateway_rate_limited_total\{key="hammer"\} [1-9]/);
    const asAlice = await fetchTrusting(ca)(`${gateway.url}/metrics`, {
      headers: { authorization: `Bearer ${keys.all?.key}` },
    });
    expect(asAlice.status).toBe(403);
    const asOps = await fetchTrusting(ca)(`${gateway.url}/metrics`, {
      headers: { authorization: `Bearer ${keys.admin?.key}` },
    });
    expect(asOps.status).toBe(200);

    await new Promise((r) => setTimeout(r, 200));
    const log = await readFile(accessLog, 'utf8');
    const verified = verifyAuditChain(log);
    expect(verified.ok).toBe(true);
    const callers = new Set(
      log
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).caller),
    );
    expect([...callers].sort()).toEqual(['alice', 'bob', 'embedder', 'hammer', 'ops', 'unauthenticated']);
    for (const k of Object.values(keys)) expect(log).not.toContain(k.key);
  });
});
