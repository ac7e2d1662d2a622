/**
 * The front door on a real air-gapped host (sshd in a network namespace): `apertus install`
 * of the demo stack with the gateway exposed on the host's own address over TLS (a
 * certificate from `apertus tls`), keys from `apertus keys api create`, and the official
 * `openai` SDK on this machine as a client on the enclave's network. The weights are
 * random: answers are never compared, shapes, statuses and records are.
 */
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import OpenAI, { AuthenticationError, PermissionDeniedError, RateLimitError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDemoHost, createDemoHost, type DemoHost } from '../../src/core/demo-host/demo-host.js';
import { httpRequest } from '../../src/core/host/http-over-transport.js';
import type { HostStatus } from '../../src/core/operations/status.js';
import { TINY_MODEL } from '../../src/core/tiny-model/generate.js';
import { hostTargetArgs, sshE2eRequirement } from '../helpers/demo-host.js';
import { fetchTrusting } from '../helpers/gateway-stack.js';

const BIN = path.resolve('bin/apertus.js');
const requirement = sshE2eRequirement();
const GATEWAY_PORT = 8443;
const METRICS = { gateway: 18099, runtime: 18080, rag: 18090 } as const;

async function apertus(args: string[]) {
  const result = await execa(process.execPath, [BIN, ...args], { reject: false, env: { CI: 'true' } });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

interface LogRecord {
  seq: number;
  caller: string;
  method: string;
  endpoint: string;
  status: number;
}

describe.skipIf(!requirement.ok)(`the gateway installed on an air-gapped host ${requirement.why}`, () => {
  let work: string;
  let host: DemoHost;
  let target: string[];
  let address: string;
  let ca: Buffer;
  let baseUrl: string;
  const keys: Record<string, string> = {};

  const client = (apiKey: string, suffix = '/v1') =>
    new OpenAI({ apiKey, baseURL: `${baseUrl}${suffix}`, fetch: fetchTrusting(ca), maxRetries: 0 });

  async function createKey(name: string, scope: string): Promise<string> {
    const made = await apertus(['keys', 'api', 'create', name, '--scope', scope, ...target, '--json']);
    expect(made.exitCode, made.stderr).toBe(0);
    return (JSON.parse(made.stdout) as { key: string }).key;
  }

  async function records(file: string): Promise<LogRecord[]> {
    return (await readFile(file, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as LogRecord);
  }

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-gateway-e2e-'));
    host = await createDemoHost({ workDir: path.join(work, 'host'), mode: 'netns' });
    target = hostTargetArgs(host);
    address = /@([0-9.]+):/.exec(host.address ?? '')?.[1] ?? '';
    expect(address).toMatch(/^169\.254\./);
    baseUrl = `https://${address}:${GATEWAY_PORT}`;

    // The demo recipe with a gateway in front; the recipe binds every address, the install this host's.
    const recipeDir = path.join(work, 'recipe');
    await cp('bundles/demo', recipeDir, { recursive: true });
    const recipe = await readFile(path.join(recipeDir, 'apertus.yaml'), 'utf8');
    const gateway = [
      '  - name: gateway',
      '    runtime: gateway',
      `    port: ${METRICS.gateway}`,
      '    expose:',
      `      port: ${GATEWAY_PORT}`,
      '    rate: 1',
      '    burst: 12',
      'verify:',
    ].join('\n');
    await writeFile(path.join(recipeDir, 'apertus.yaml'), recipe.replace(/^verify:$/m, gateway));
    await mkdir(path.join(work, 'out'));
    const bundled = await apertus(['bundle', recipeDir, '-o', path.join(work, 'out'), '--no-cli', '--json']);
    expect(bundled.exitCode, bundled.stderr).toBe(0);
    const bundle = (JSON.parse(bundled.stdout) as { path: string }).path;

    const tls = path.join(work, 'tls');
    await mkdir(tls);
    expect((await apertus(['tls', 'ca', '--out', tls, '--json'])).exitCode).toBe(0);
    const cert = await apertus([
      'tls',
      'cert',
      '--ca',
      tls,
      '--name',
      address,
      '--out',
      path.join(tls, 'host'),
    ]);
    expect(cert.exitCode, cert.stderr).toBe(0);
    ca = await readFile(path.join(tls, 'ca.pem'));

    const installed = await apertus([
      'install',
      bundle,
      ...target,
      '--allow-unsigned',
      ...['--tls-cert', path.join(tls, 'host.pem'), '--tls-key', path.join(tls, 'host.key')],
      ...['--expose-address', address, '--json'],
    ]);
    expect(installed.exitCode, installed.stdout + installed.stderr).toBe(0);
    const report = JSON.parse(installed.stdout) as {
      checks: Array<{ id: string; service: string; status: string; detail: string }>;
    };
    const through = report.checks.filter((c) => c.service === 'gateway');
    // Verification went through the gateway over TLS with a key of its own.
    expect(through.map((c) => c.id).sort()).toEqual([
      'verify.audit',
      'verify.chat',
      'verify.embeddings',
      'verify.health',
      'verify.models',
      'verify.models',
      'verify.rag-canary',
    ]);
    expect(through.every((c) => c.status === 'ok')).toBe(true);
    expect(through.find((c) => c.id === 'verify.models')?.detail).toMatch(/over TLS .*401 invalid_api_key/);

    keys.alice = await createKey('alice', 'chat,embeddings,rag');
    keys.embedder = await createKey('embedder', 'embeddings');
    keys.leaver = await createKey('leaver', 'chat');
  }, 240_000);

  afterAll(async () => {
    await host?.teardown();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('serves chat, streaming, embeddings, json_schema and RAG chat with sources over TLS with a key', async () => {
    const openai = client(keys.alice as string);
    const models = await openai.models.list();
    expect(models.data.map((m) => m.id).sort()).toEqual([TINY_MODEL.id, 'rag:rag']);

    const chat = await openai.chat.completions.create({
      model: TINY_MODEL.id,
      messages: [{ role: 'user', content: 'hello' }],
      max_tokens: 4,
    });
    expect(chat.choices[0]?.message.role).toBe('assistant');

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

    const embeddings = await openai.embeddings.create({ model: TINY_MODEL.id, input: ['air', 'gap'] });
    expect(embeddings.data.map((d) => d.embedding.length)).toEqual([
      TINY_MODEL.embeddingLength,
      TINY_MODEL.embeddingLength,
    ]);

    const structured = await openai.chat.completions.create({
      model: TINY_MODEL.id,
      messages: [{ role: 'user', content: 'Name a ward and its floor.' }],
      max_tokens: 48,
      response_format: {
        type: 'json_schema',
        json_schema: {
          name: 'ward',
          strict: true,
          schema: {
            type: 'object',
            properties: { floor: { type: 'integer' } },
            required: ['floor'],
            additionalProperties: false,
          },
        },
      },
    });
    const parsed = JSON.parse(structured.choices[0]?.message.content ?? '') as { floor: unknown };
    expect(Number.isInteger(parsed.floor)).toBe(true);

    // RAG: ingest through the gateway's route, then chat with the base URL /rag/rag/v1.
    const passage = 'The pharmacy on the second floor opens at eight and closes at six.';
    const ingest = await fetchTrusting(ca)(`${baseUrl}/rag/rag/v1/documents`, {
      method: 'POST',
      headers: { authorization: `Bearer ${keys.alice}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'pharmacy', title: 'Pharmacy', format: 'text', text: passage }),
    });
    expect(ingest.status).toBe(201);
    const answer = await client(keys.alice as string, '/rag/rag/v1').chat.completions.create({
      model: TINY_MODEL.id,
      messages: [{ role: 'user', content: passage }],
      max_tokens: 4,
    });
    const sources = (answer as unknown as { sources: Array<{ document: string }> }).sources;
    expect(sources.map((s) => s.document)).toContain('pharmacy');
  });

  it('refuses no key, a wrong key and a revoked key with 401, and a key without the scope with 403', async () => {
    const none = await fetchTrusting(ca)(`${baseUrl}/v1/models`);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({
      error: { type: 'invalid_request_error', code: 'invalid_api_key' },
    });

    const wrong = await client(`apk-${'x'.repeat(43)}`)
      .models.list()
      .catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(AuthenticationError);
    expect((wrong as AuthenticationError).code).toBe('invalid_api_key');

    expect((await client(keys.leaver as string).models.list()).data.map((m) => m.id)).toEqual([
      TINY_MODEL.id,
    ]);
    const revoked = await apertus(['keys', 'api', 'revoke', 'leaver', ...target, '--json']);
    expect(revoked.exitCode, revoked.stderr).toBe(0);
    const after = await client(keys.leaver as string)
      .models.list()
      .catch((e: unknown) => e);
    expect(after).toBeInstanceOf(AuthenticationError);
    expect((after as AuthenticationError).code).toBe('invalid_api_key');

    const embedOnly = client(keys.embedder as string);
    expect((await embedOnly.embeddings.create({ model: TINY_MODEL.id, input: 'x' })).data).toHaveLength(1);
    const chat = await embedOnly.chat.completions
      .create({ model: TINY_MODEL.id, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 })
      .catch((e: unknown) => e);
    expect(chat).toBeInstanceOf(PermissionDeniedError);
    expect((chat as PermissionDeniedError).code).toBe('insufficient_permissions');
  });

  it('answers a client over its rate limit with 429 and Retry-After', async () => {
    const hammer = client(keys.embedder as string);
    let limited: unknown = null;
    for (let i = 0; i < 30 && limited === null; i++)
      await hammer.models.list().catch((e: unknown) => {
        limited = e;
      });
    expect(limited).toBeInstanceOf(RateLimitError);
    expect(Number((limited as RateLimitError).headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });

  it('records the key name in the RAG audit log and the access log, both verify, and no key is in a file', async () => {
    const rag = await records(path.join(host.root, 'data', 'rag', 'audit.log'));
    expect(rag.some((r) => r.caller === 'alice' && r.endpoint === '/v1/documents' && r.status === 201)).toBe(
      true,
    );
    expect(rag.some((r) => r.caller === 'alice' && r.endpoint === '/v1/chat/completions')).toBe(true);
    // Install's own key, by name, in both logs.
    expect(rag.some((r) => /^install-verify-[0-9a-f]{8}$/.test(r.caller))).toBe(true);
    const accessLog = path.join(host.root, 'data', 'gateway', 'access.log');
    const access = await records(accessLog);
    expect(access.some((r) => r.caller === 'alice' && r.endpoint === '/v1/chat/completions')).toBe(true);
    expect(access.some((r) => r.caller === 'unauthenticated' && r.status === 401)).toBe(true);
    expect(access.some((r) => r.caller === 'embedder' && r.status === 429)).toBe(true);

    const ragVerify = await apertus(['audit', 'verify', ...target, '--json']);
    expect(ragVerify.exitCode, ragVerify.stdout + ragVerify.stderr).toBe(0);
    const accessVerify = await apertus(['audit', 'verify', ...target, '--log', accessLog, '--json']);
    expect(accessVerify.exitCode, accessVerify.stdout + accessVerify.stderr).toBe(0);
    expect(JSON.parse(accessVerify.stdout)).toMatchObject({ ok: true });

    // The host keeps hashes: no key, install's own included, is in any file under the root.
    const keyFile = JSON.parse(
      await readFile(path.join(host.root, 'data', 'gateway', 'api-keys.json'), 'utf8'),
    );
    expect(keyFile.keys.map((k: { name: string }) => k.name).sort()).toEqual(['alice', 'embedder', 'leaver']);
    const patterns = Object.values(keys).flatMap((key) => ['-e', key]);
    expect(patterns).toHaveLength(6);
    const grep = await execa('grep', ['-rlF', ...patterns, host.root], { reject: false });
    expect(grep.exitCode, grep.stdout).toBe(1);

    const status = await apertus(['status', ...target, '--json']);
    expect(status.exitCode, status.stderr).toBe(0);
    const parsed = JSON.parse(status.stdout) as HostStatus;
    expect(parsed.services.map((s) => `${s.name}:${s.health}`)).toContain('gateway:ok');
    expect(parsed.warnings.filter((w) => /plain HTTP/.test(w))).toEqual([]);
  });

  it('serves /metrics that promtool accepts from the gateway, the runtime and the RAG service', async () => {
    const transport = await connectDemoHost(host);
    try {
      for (const [name, port] of Object.entries(METRICS)) {
        const metrics = await httpRequest(transport, { port, path: '/metrics', timeoutMs: 10_000 });
        expect(metrics.status, name).toBe(200);
        const checked = await execa('promtool', ['check', 'metrics'], { input: metrics.body, reject: false });
        expect(checked.exitCode, `${name}: ${checked.stdout}${checked.stderr}`).toBe(0);
        const lines = metrics.body
          .split('\n')
          .filter((l) => /^apertus_\w+(\{[^}]*\})? [1-9]/.test(l) && !/_bucket\{/.test(l));
        expect(lines.length, name).toBeGreaterThan(0);
        process.stdout.write(`${name} /metrics (promtool ok):\n  ${lines.slice(0, 4).join('\n  ')}\n`);
      }
    } finally {
      await transport.close();
    }
  });
});
