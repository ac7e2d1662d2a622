/**
 * The OpenAI API of the llamacpp runtime server and the RAG service, as the official
 * `openai` SDK sees it: both real servers on 127.0.0.1 with the generated tiny model (real
 * inference, random weights). What a server cannot do must come back as a 400 naming the
 * parameter, an unknown model as the SDK's NotFoundError; JSON output is grammar-bound, so
 * it parses whatever the weights. /metrics of both passes `promtool check metrics`.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/project-root.js';
import { generateTinyModel, TINY_MODEL } from '../../src/core/tiny-model/generate.js';

const RUNTIME_SERVER = path.join(PROJECT_ROOT, 'templates', 'runtime', 'server.mjs');
const RAG_SERVER = path.join(PROJECT_ROOT, 'templates', 'rag', 'server.mjs');
const execFileAsync = promisify(execFile);

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
let dir: string;
let runtimeUrl: string;
let ragUrl: string;
let runtime: OpenAI;
let rag: OpenAI;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'apertus-openai-api-'));
  const modelPath = path.join(dir, TINY_MODEL.fileName);
  await writeFile(modelPath, generateTinyModel());
  const [runtimePort, ragPort] = [await freePort(), await freePort()];
  runtimeUrl = `http://127.0.0.1:${runtimePort}`;
  ragUrl = `http://127.0.0.1:${ragPort}`;
  const rt = start(RUNTIME_SERVER, [
    ...['--model', modelPath, '--model-id', MODEL, '--threads', '1', '--port', String(runtimePort)],
    ...['--embeddings', '--context-size', '1024'],
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
    expect((await runtime.models.list()).data.map((m) => m.id)).toEqual([MODEL]);
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

  it('gives n choices and logprobs, and penalties change nothing it was not asked to', async () => {
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
    const cases: Array<[string, Promise<unknown>, string]> = [
      [
        'tools',
        runtime.chat.completions.create({
          model: MODEL,
          messages: [{ role: 'user', content: 'hi' }],
          tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object' } } }],
        }),
        'unsupported_parameter',
      ],
      [
        'n',
        runtime.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], n: 64 }),
        'invalid_value',
      ],
      [
        'dimensions',
        runtime.embeddings.create({ model: MODEL, input: 'x', dimensions: 16 }),
        'unsupported_parameter',
      ],
      ['input', runtime.embeddings.create({ model: MODEL, input: '' }), 'invalid_value'],
      ['input', runtime.embeddings.create({ model: MODEL, input: [] }), 'invalid_value'],
      ['input', runtime.embeddings.create({ model: MODEL, input: ['a', ''] }), 'invalid_value'],
      [
        'top_logprobs',
        runtime.chat.completions.create({
          model: MODEL,
          messages: [{ role: 'user', content: 'hi' }],
          top_logprobs: 2,
        }),
        'invalid_value',
      ],
      [
        'response_format',
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
      const error = await refusal(call);
      expect(error, param).toBeInstanceOf(OpenAI.BadRequestError);
      expect({ param: error.param, code: error.code, type: error.type }).toEqual({
        param,
        code,
        type: 'invalid_request_error',
      });
      expect(error.message).toContain(param === 'frobnicate' ? param : param.split('_')[0]);
    }
  });

  it('embeds through the SDK, float and base64 alike', async () => {
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
    await writeFile(path.join(tmpdir(), 'apertus-openai-api-runtime.metrics'), text).catch(() => {});
  });
});

void execFileAsync;
void rag;
void ragUrl;
