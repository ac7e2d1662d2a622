/**
 * The OpenAI API of the llamacpp runtime server and the RAG service, as the official
 * `openai` SDK sees it: both real servers on 127.0.0.1 with the generated tiny model (real
 * inference, random weights). What a server cannot do must come back as a 400 naming the
 * parameter, an unknown model as the SDK's NotFoundError; JSON output is grammar-bound, so
 * it parses whatever the weights. /metrics of both passes `promtool check metrics`.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalTransport } from '../../src/core/host/local-transport.js';
import { PROJECT_ROOT } from '../../src/core/project-root.js';
import type { ServiceSpec } from '../../src/core/runtimes/registry.js';
import { checkReleaseServices } from '../../src/core/runtimes/release-health.js';
import { collectRuntimeFiles, MONITORING_FILES } from '../../src/core/runtimes/runtime-files.js';
import {
  generateTinyLora,
  generateTinyModel,
  TINY_LORA,
  TINY_MODEL,
} from '../../src/core/tiny-model/generate.js';

const RUNTIME_SERVER = path.join(PROJECT_ROOT, 'templates', 'runtime', 'server.mjs');
const RAG_SERVER = path.join(PROJECT_ROOT, 'templates', 'rag', 'server.mjs');

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

const children: ChildProcess[] = [];
function start(script: string, args: string[]): { output: () => string; exited: () => boolean } {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stdout?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  return { output: () => output, exited: () => exited };
}

async function waitHealthy(url: string, { output, exited }: ReturnType<typeof start>): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const status = await fetch(`${url}/health`).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) return;
    if (exited() || Date.now() > deadline) throw new Error(`${url} never became healthy:\n${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `promtool check metrics` on the text; promtool comes with Debian's prometheus package (.ci/run). */
async function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile('promtool', ['check', 'metrics'], (error, stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new Error('promtool is missing: apt-get install prometheus (see .ci/run)'));
        return;
      }
      resolve({ code: error ? Number(error.code ?? 1) : 0, output: `${stdout}${stderr}` });
    });
    child.stdin?.end(text);
  });
}

/** One sample's value by exact name and label set as rendered, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const MODEL = TINY_MODEL.id;
const LORA = TINY_LORA.id;
let dir: string;
let runtimeUrl: string;
let ragUrl: string;
let runtime: OpenAI;
let rag: OpenAI;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'apertus-openai-api-'));
  const modelPath = path.join(dir, TINY_MODEL.fileName);
  await writeFile(modelPath, generateTinyModel());
  const loraPath = path.join(dir, TINY_LORA.fileName);
  await writeFile(loraPath, generateTinyLora());
  const [runtimePort, ragPort] = [await freePort(), await freePort()];
  runtimeUrl = `http://127.0.0.1:${runtimePort}`;
  ragUrl = `http://127.0.0.1:${ragPort}`;
  const rt = start(RUNTIME_SERVER, [
    ...['--model', modelPath, '--model-id', MODEL, '--threads', '1', '--port', String(runtimePort)],
    ...['--embeddings', '--context-size', '1024'],
    ...['--adapter', loraPath, '--adapter-id', LORA],
  ]);
  await waitHealthy(runtimeUrl, rt);
  const rg = start(RAG_SERVER, [
    ...['--port', String(ragPort), '--data-dir', path.join(dir, 'rag'), '--runtime-url', runtimeUrl],
    ...['--embedding-model', MODEL, '--chat-model', MODEL, '--dimension', String(TINY_MODEL.embeddingLength)],
    ...['--chunk-size', '200', '--chunk-overlap', '20', '--top-k', '2'],
  ]);
  await waitHealthy(ragUrl, rg);
  runtime = new OpenAI({ baseURL: `${runtimeUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
  rag = new OpenAI({ baseURL: `${ragUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
  const ingested = await fetch(`${ragUrl}/v1/documents`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      id: 'guide',
      title: 'Guide',
      text: 'The vault opens at nine. Keys are kept in the blue box.',
    }),
  });
  expect(ingested.status).toBe(201);
}, 120_000);

afterAll(async () => {
  for (const child of children) child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  await rm(dir, { recursive: true, force: true });
});

/** The SDK's error for a call that must fail, with its status, type, code and param. */
async function refusal(call: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  const error = await call.then(
    () => {
      throw new Error('the call succeeded; a refusal was expected');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(OpenAI.APIError);
  return error as InstanceType<typeof OpenAI.APIError>;
}

/** A 400 the SDK raises as BadRequestError, naming `param`, with `code` and OpenAI's type. */
async function badRequest(call: () => Promise<unknown>, param: string, code: string) {
  const error = await refusal(call());
  expect(error, param).toBeInstanceOf(OpenAI.BadRequestError);
  expect({ param: error.param, code: error.code, type: error.type }).toEqual({
    param,
    code,
    type: 'invalid_request_error',
  });
  return error;
}

const JSON_SCHEMA = {
  type: 'object',
  properties: {
    approved: { type: 'boolean' },
    colour: { type: 'string', enum: ['red', 'green', 'blue'] },
  },
  required: ['approved', 'colour'],
  additionalProperties: false,
} as const;

describe('the runtime server through the openai SDK', () => {
  it('lists and retrieves its model; an unknown one is NotFoundError model_not_found', async () => {
    expect((await runtime.models.list()).data.map((m) => m.id)).toEqual([MODEL, LORA]);
    expect(await runtime.models.retrieve(MODEL)).toMatchObject({ id: MODEL, object: 'model' });
    const missing = await refusal(runtime.models.retrieve('gpt-4o'));
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    expect(missing.code).toBe('model_not_found');
    const chat = await refusal(
      runtime.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }),
    );
    expect(chat).toBeInstanceOf(OpenAI.NotFoundError);
    expect(chat).toMatchObject({ code: 'model_not_found', type: 'invalid_request_error', param: 'model' });
    const embed = await refusal(runtime.embeddings.create({ model: 'text-embedding-3-small', input: 'x' }));
    expect(embed).toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('serves its LoRA adapter under its own id: listed over its base, answering unlike the base', async () => {
    expect(await runtime.models.retrieve(LORA)).toMatchObject({ id: LORA, object: 'model', parent: MODEL });
    const ask = (model: string) =>
      runtime.chat.completions.create({
        model,
        messages: [{ role: 'user', content: 'Say hello.' }],
        max_tokens: 8,
        temperature: 0,
        logprobs: true,
      });
    const [base, adapted, again] = [await ask(MODEL), await ask(LORA), await ask(LORA)];
    expect(adapted.model).toBe(LORA);
    expect(adapted.usage?.completion_tokens).toBeGreaterThan(0);
    const tokens = (reply: OpenAI.ChatCompletion) =>
      (reply.choices[0]?.logprobs?.content ?? []).map((t) => t.bytes);
    // Greedy decoding: the adapter's weights, not chance, make the difference.
    expect(tokens(again)).toEqual(tokens(adapted));
    expect(tokens(adapted)).not.toEqual(tokens(base));
    const stream = await runtime.chat.completions.create({
      model: LORA,
      messages: [{ role: 'user', content: 'Say hello.' }],
      max_tokens: 4,
      stream: true,
    });
    for await (const chunk of stream) expect(chunk.model).toBe(LORA);
    // Embeddings come from the base model alone.
    const embed = await refusal(runtime.embeddings.create({ model: LORA, input: 'x' }));
    expect(embed).toBeInstanceOf(OpenAI.NotFoundError);
  });

  it("a rollback's check lists the adapter's id next to the base, and fails for an adapter it does not serve", async () => {
    const service = (adapterId: string): ServiceSpec => ({
      name: 'llm',
      runtime: 'llamacpp',
      model: { component: 'model', path: TINY_MODEL.fileName, id: MODEL },
      port: Number(new URL(runtimeUrl).port),
      threads: 1,
      contextSize: 1024,
      embeddings: true,
      adapters: [{ component: 'lora', path: TINY_LORA.fileName, id: adapterId }],
    });
    const summary = async (adapterId: string) =>
      (await checkReleaseServices(createLocalTransport(), [service(adapterId)], 5_000)).map((c) => [
        c.id,
        c.status,
        c.model,
        c.detail,
      ]);
    expect(await summary(LORA)).toEqual([
      ['verify.health', 'ok', undefined, expect.any(String)],
      ['verify.models', 'ok', undefined, `${MODEL} listed`],
      ['verify.models', 'ok', LORA, `adapter ${LORA} listed`],
    ]);
    expect((await summary('gone-lora'))[2]).toEqual([
      'verify.models',
      'fail',
      'gone-lora',
      `adapter gone-lora not among [${MODEL}, ${LORA}]`,
    ]);
  });

  it('chats, streams, and counts tokens', async () => {
    const reply = await runtime.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'Say hello.' }],
      max_tokens: 8,
      seed: 1,
    });
    expect(reply.choices).toHaveLength(1);
    expect(reply.usage?.completion_tokens).toBeGreaterThan(0);
    expect(reply.usage?.completion_tokens).toBeLessThanOrEqual(8);

    const stream = await runtime.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'Say hello.' }],
      max_tokens: 8,
      seed: 1,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let contentChunks = 0;
    let usage: OpenAI.CompletionUsage | undefined;
    let finish: string | null = null;
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta.content;
      if (delta) {
        text += delta;
        contentChunks += 1;
      }
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    // Same seed, same prompt, same text: streamed as it was generated, in pieces.
    expect(text).toBe(reply.choices[0]?.message.content);
    expect(contentChunks).toBeGreaterThan(1);
    expect(finish).toBe(reply.choices[0]?.finish_reason);
    expect(usage).toEqual(reply.usage);
  });

  it('answers json_schema and json_object with output that parses', async () => {
    for (let seed = 1; seed <= 3; seed++) {
      const reply = await runtime.chat.completions.create({
        model: MODEL,
        messages: [{ role: 'user', content: 'Is it approved, and which colour?' }],
        max_tokens: 200,
        seed,
        response_format: {
          type: 'json_schema',
          json_schema: { name: 'verdict', schema: JSON_SCHEMA, strict: true },
        },
      });
      expect(reply.choices[0]?.finish_reason).toBe('stop');
      const parsed = JSON.parse(reply.choices[0]?.message.content ?? '');
      expect(Object.keys(parsed).sort()).toEqual(['approved', 'colour']);
      expect(typeof parsed.approved).toBe('boolean');
      expect(['red', 'green', 'blue']).toContain(parsed.colour);
    }
    const object = await runtime.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'Answer in JSON.' }],
      max_tokens: 300,
      seed: 4,
      response_format: { type: 'json_object' },
    });
    const content = object.choices[0]?.message.content ?? '';
    // A grammar bounds the shape, not the length: a cut-off answer is "length", never bad JSON that says "stop".
    if (object.choices[0]?.finish_reason === 'stop') expect(typeof JSON.parse(content)).toBe('object');
    else expect(content.trimStart().startsWith('{')).toBe(true);
  });

  it('gives n choices with logprobs and top_logprobs, under a frequency penalty', async () => {
    const reply = await runtime.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 4,
      n: 2,
      seed: 7,
      logprobs: true,
      top_logprobs: 3,
      frequency_penalty: 0.5,
    });
    expect(reply.choices.map((c) => c.index)).toEqual([0, 1]);
    for (const choice of reply.choices) {
      const content = choice.logprobs?.content ?? [];
      expect(content.length).toBeGreaterThan(0);
      for (const entry of content) {
        expect(entry.logprob).toBeLessThanOrEqual(0);
        expect(entry.top_logprobs).toHaveLength(3);
        // The top list is sorted and the chosen token is no likelier than the first.
        expect(entry.top_logprobs[0]?.logprob).toBeGreaterThanOrEqual(entry.logprob);
      }
    }
    expect(reply.usage?.completion_tokens).toBeGreaterThan(reply.choices.length - 1);
  });

  it('refuses what it cannot do with a 400 naming the parameter', async () => {
    const cases: Array<[string, () => Promise<unknown>, string]> = [
      [
        'tools',
        () =>
          runtime.chat.completions.create({
            model: MODEL,
            messages: [{ role: 'user', content: 'hi' }],
            tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object' } } }],
          }),
        'unsupported_parameter',
      ],
      [
        'n',
        () =>
          runtime.chat.completions.create({
            model: MODEL,
            messages: [{ role: 'user', content: 'hi' }],
            n: 64,
          }),
        'invalid_value',
      ],
      [
        'dimensions',
        () => runtime.embeddings.create({ model: MODEL, input: 'x', dimensions: 16 }),
        'unsupported_parameter',
      ],
      ['input', () => runtime.embeddings.create({ model: MODEL, input: '' }), 'invalid_value'],
      ['input', () => runtime.embeddings.create({ model: MODEL, input: [] }), 'invalid_value'],
      ['input', () => runtime.embeddings.create({ model: MODEL, input: ['a', ''] }), 'invalid_value'],
      [
        'top_logprobs',
        () =>
          runtime.chat.completions.create({
            model: MODEL,
            messages: [{ role: 'user', content: 'hi' }],
            top_logprobs: 2,
          }),
        'invalid_value',
      ],
      [
        'response_format',
        () =>
          runtime.chat.completions.create({
            model: MODEL,
            messages: [{ role: 'user', content: 'hi' }],
            // biome-ignore lint/suspicious/noExplicitAny: a type the SDK would not let through
            response_format: { type: 'xml' } as any,
          }),
        'unsupported_value',
      ],
      [
        'frobnicate',
        () =>
          runtime.chat.completions.create({
            model: MODEL,
            messages: [{ role: 'user', content: 'hi' }],
            // biome-ignore lint/suspicious/noExplicitAny: an argument the API does not know
            ...({ frobnicate: true } as any),
          }),
        'unknown_parameter',
      ],
    ];
    for (const [param, call, code] of cases) {
      const error = await badRequest(call, param, code);
      expect(error.message).toContain(param === 'frobnicate' ? param : param.split('_')[0]);
    }
  });

  it("embeds through the SDK (which asks for base64 and decodes it), with dimensions when it is the model's own", async () => {
    const result = await runtime.embeddings.create({ model: MODEL, input: ['one', 'two'] });
    expect(result.data.map((d) => d.embedding.length)).toEqual([
      TINY_MODEL.embeddingLength,
      TINY_MODEL.embeddingLength,
    ]);
    const same = await runtime.embeddings.create({
      model: MODEL,
      input: 'one',
      dimensions: TINY_MODEL.embeddingLength,
    });
    expect(same.data[0]?.embedding[0]).toBeCloseTo(result.data[0]?.embedding[0] ?? Number.NaN, 5);
  });
});

describe('metrics', () => {
  it('runtime /metrics passes promtool and counts a load of 20 requests', async () => {
    const before = await (await fetch(`${runtimeUrl}/metrics`)).text();
    const okBefore =
      sample(
        before,
        `apertus_runtime_requests_total{route="/v1/chat/completions",method="POST",status="200",model="${MODEL}"}`,
      ) ?? 0;
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        runtime.chat.completions
          .create({
            model: MODEL,
            messages: [{ role: 'user', content: `request ${i}` }],
            max_tokens: 6,
            stream: i % 2 === 0,
          })
          .then(async (r) => {
            if (Symbol.asyncIterator in r) for await (const _ of r);
          }),
      ),
    );
    const response = await fetch(`${runtimeUrl}/metrics`);
    expect(response.headers.get('content-type')).toContain('text/plain');
    const text = await response.text();
    const check = await promtoolCheck(text);
    expect(check, check.output).toEqual({ code: 0, output: '' });
    expect(
      sample(
        text,
        `apertus_runtime_requests_total{route="/v1/chat/completions",method="POST",status="200",model="${MODEL}"}`,
      ),
    ).toBe(okBefore + 20);
    expect(
      sample(text, `apertus_runtime_time_to_first_token_seconds_count{model="${MODEL}"}`),
    ).toBeGreaterThanOrEqual(20);
    expect(sample(text, `apertus_runtime_completion_tokens_total{model="${MODEL}"}`)).toBeGreaterThanOrEqual(
      20,
    );
    expect(
      sample(text, `apertus_runtime_prompt_tokens_total{endpoint="chat",model="${MODEL}"}`),
    ).toBeGreaterThan(0);
    expect(sample(text, `apertus_runtime_queue_depth{model="${MODEL}"}`)).toBe(0);
    expect(sample(text, `apertus_runtime_model_load_seconds{model="${MODEL}"}`)).toBeGreaterThan(0);
    expect(sample(text, `apertus_runtime_model_loaded{model="${MODEL}"}`)).toBe(1);
    expect(
      sample(text, `apertus_runtime_generation_tokens_per_second_count{model="${MODEL}"}`),
    ).toBeGreaterThan(0);
  });
});

describe('the RAG service through the openai SDK', () => {
  type WithSources = { sources?: Array<{ index: number; document: string }> };

  it('answers with sources, top level and in usage (where LangChain keeps them)', async () => {
    const reply = await rag.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'When does the vault open?' }],
      max_tokens: 6,
      seed: 2,
    });
    const sources = (reply as unknown as WithSources).sources;
    expect(sources?.[0]).toMatchObject({ index: 1, document: 'guide' });
    expect((reply.usage as unknown as WithSources).sources).toEqual(sources);
    expect(reply.usage?.prompt_tokens).toBeGreaterThan(20);
  });

  it('streams the answer as the runtime produces it, sources in the first chunk', async () => {
    const request = {
      model: MODEL,
      messages: [{ role: 'user' as const, content: 'Where are the keys?' }],
      max_tokens: 8,
      seed: 3,
    };
    const whole = await rag.chat.completions.create(request);
    const stream = await rag.chat.completions.create({
      ...request,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe(whole.choices[0]?.message.content);
    expect(chunks.filter((c) => c.choices[0]?.delta.content).length).toBeGreaterThan(1);
    expect((chunks[0] as unknown as WithSources).sources?.[0]?.document).toBe('guide');
    const usage = chunks.at(-1)?.usage;
    expect(usage?.completion_tokens).toBe(whole.usage?.completion_tokens);
    expect((usage as unknown as WithSources).sources?.[0]?.document).toBe('guide');
  });

  it('records a streamed answer with the hash of every byte sent, its number as a trailer', async () => {
    const { request: httpRequest } = await import('node:http');
    const streamed = await new Promise<{ body: Buffer; trailers: NodeJS.Dict<string> }>((resolve, reject) => {
      const req = httpRequest(
        `${ragUrl}/v1/chat/completions`,
        { method: 'POST', headers: { 'content-type': 'application/json' } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ body: Buffer.concat(chunks), trailers: res.trailers }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(
        JSON.stringify({
          model: MODEL,
          messages: [{ role: 'user', content: 'keys?' }],
          max_tokens: 5,
          stream: true,
        }),
      );
    });
    expect(streamed.body.toString().endsWith('data: [DONE]\n\n')).toBe(true);
    const lines = (await readFile(path.join(dir, 'rag', 'audit.log'), 'utf8')).trim().split('\n');
    const record = JSON.parse(lines.at(-1) ?? '{}') as {
      seq: number;
      status: number;
      responseSha256: string;
    };
    expect(streamed.trailers['x-apertus-audit-seq']).toBe(String(record.seq));
    expect(record.status).toBe(200);
    expect(record.responseSha256).toBe(createHash('sha256').update(streamed.body).digest('hex'));
  });

  it('refuses a JSON schema keyword the grammar would not enforce, and takes Pydantic-style anyOf', async () => {
    const ask = (schema: Record<string, unknown>) =>
      rag.chat.completions.create({
        model: MODEL,
        messages: [{ role: 'user', content: 'hi' }],
        max_tokens: 100,
        seed: 6,
        response_format: { type: 'json_schema', json_schema: { name: 'x', schema } },
      });
    for (const schema of [
      { type: 'no-such-type' },
      { type: 'object', properties: { n: { type: 'integer', minimum: 3 } } },
      { type: 'string', pattern: '^a+$' },
    ]) {
      const error = await badRequest(() => ask(schema), 'response_format', 'unsupported_value');
      expect(error.message).toMatch(/no-such-type|minimum|pattern/);
    }
    const optional = await ask({
      title: 'Verdict',
      type: 'object',
      properties: { note: { anyOf: [{ type: 'boolean' }, { type: 'null' }], title: 'Note' } },
      required: ['note'],
      additionalProperties: false,
    });
    expect(optional.choices[0]?.finish_reason).toBe('stop');
    expect([true, false, null]).toContain(JSON.parse(optional.choices[0]?.message.content ?? '').note);
  });

  it('serves /v1/embeddings from its embeddings runtime, one base URL for the app', async () => {
    const viaRag = await rag.embeddings.create({ model: MODEL, input: 'the blue box' });
    const direct = await runtime.embeddings.create({ model: MODEL, input: 'the blue box' });
    expect(viaRag.data[0]?.embedding).toEqual(direct.data[0]?.embedding);
    expect((await rag.models.list()).data.map((m) => m.id)).toEqual([MODEL]);
    expect(await rag.models.retrieve(MODEL)).toMatchObject({ id: MODEL });
  });

  it('gives the same strict errors: 404 model_not_found, 400 naming the parameter', async () => {
    for (const call of [
      () => rag.models.retrieve('gpt-4o'),
      () => rag.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }),
      () => rag.embeddings.create({ model: 'text-embedding-3-small', input: 'x' }),
    ]) {
      const error = await refusal(call());
      expect(error).toBeInstanceOf(OpenAI.NotFoundError);
      expect(error.code).toBe('model_not_found');
    }
    const cases: Array<[string, () => Promise<unknown>, string]> = [
      [
        'tools',
        () =>
          rag.chat.completions.create({
            model: MODEL,
            messages: [{ role: 'user', content: 'hi' }],
            tools: [{ type: 'function', function: { name: 'lookup' } }],
          }),
        'unsupported_parameter',
      ],
      [
        'tools',
        () =>
          rag.chat.completions.create({
            model: MODEL,
            stream: true,
            messages: [{ role: 'user', content: 'hi' }],
            tools: [{ type: 'function', function: { name: 'lookup' } }],
          }),
        'unsupported_parameter',
      ],
      ['input', () => rag.embeddings.create({ model: MODEL, input: '' }), 'invalid_value'],
      ['input', () => rag.embeddings.create({ model: MODEL, input: [] }), 'invalid_value'],
      [
        'dimensions',
        () => rag.embeddings.create({ model: MODEL, input: 'x', dimensions: 8 }),
        'unsupported_parameter',
      ],
    ];
    for (const [param, call, code] of cases) await badRequest(call, param, code);
  });

  it('passes response_format to the runtime: json_schema output parses', async () => {
    const reply = await rag.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'Is the vault approved?' }],
      max_tokens: 200,
      seed: 5,
      response_format: { type: 'json_schema', json_schema: { name: 'verdict', schema: JSON_SCHEMA } },
    });
    expect(reply.choices[0]?.finish_reason).toBe('stop');
    expect(Object.keys(JSON.parse(reply.choices[0]?.message.content ?? '')).sort()).toEqual([
      'approved',
      'colour',
    ]);
  });

  it('RAG /metrics passes promtool and shows retrieval latency and hits after 20 requests', async () => {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        i % 2 === 0
          ? fetch(`${ragUrl}/v1/query`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ query: `vault question ${i}` }),
            }).then((r) => r.text())
          : rag.chat.completions.create({
              model: MODEL,
              messages: [{ role: 'user', content: `keys question ${i}` }],
              max_tokens: 4,
            }),
      ),
    );
    const response = await fetch(`${ragUrl}/metrics`);
    const text = await response.text();
    const check = await promtoolCheck(text);
    expect(check, check.output).toEqual({ code: 0, output: '' });
    expect(sample(text, 'apertus_rag_requests_total{endpoint="/v1/query",method="POST",status="200"}')).toBe(
      10,
    );
    expect(sample(text, 'apertus_rag_retrieval_duration_seconds_count')).toBeGreaterThanOrEqual(20);
    expect(sample(text, 'apertus_rag_retrieval_hits_sum')).toBeGreaterThanOrEqual(20);
    expect(sample(text, 'apertus_rag_retrieval_top_score_count')).toBeGreaterThanOrEqual(20);
    expect(sample(text, 'apertus_rag_documents')).toBe(1);
    expect(sample(text, 'apertus_rag_runtime_up')).toBe(1);
    expect(sample(text, 'apertus_rag_audit_records_total')).toBe(sample(text, 'apertus_rag_audit_last_seq'));
  });
});

describe('what the release ships for monitoring', () => {
  it('a scrape config promtool accepts and a dashboard over metrics the servers export', async () => {
    const monitoring = path.join(PROJECT_ROOT, 'templates', 'monitoring');
    const config = await new Promise<{ code: number; output: string }>((resolve) =>
      execFile(
        'promtool',
        ['check', 'config', path.join(monitoring, 'prometheus-scrape.yml')],
        (error, out, err) => resolve({ code: error ? 1 : 0, output: `${out}${err}` }),
      ),
    );
    expect(config.code, config.output).toBe(0);
    const dashboard = JSON.parse(await readFile(path.join(monitoring, 'grafana-dashboard.json'), 'utf8')) as {
      panels: Array<{ targets?: Array<{ expr: string }> }>;
    };
    const exported = `${await (await fetch(`${runtimeUrl}/metrics`)).text()}${await (await fetch(`${ragUrl}/metrics`)).text()}`;
    const used = new Set(
      dashboard.panels.flatMap((p) =>
        (p.targets ?? []).flatMap((t) => t.expr.match(/apertus_[a-z_]+/g) ?? []),
      ),
    );
    expect(used.size).toBeGreaterThan(10);
    for (const name of used) expect(exported, name).toMatch(new RegExp(`^${name}[{ ]`, 'm'));

    const files = await collectRuntimeFiles(PROJECT_ROOT);
    const paths = files.tree.map((f) => f.path);
    for (const name of MONITORING_FILES) expect(paths).toContain(`monitoring/${name}`);
    expect(paths).toContain('openai-request.mjs');
    expect(paths).toContain('runtime-metrics.mjs');
    expect(files.packages.map((p) => p.name)).toContain('prom-client');
  });
});
