#!/usr/bin/env node
// apertus llamacpp runtime: a small OpenAI-compatible HTTP server over node-llama-cpp.
//
// Plain JavaScript on purpose: it runs on the air-gapped host with the Node binary the
// bundle ships, next to the node_modules closure apertus collects (no compile step there).
//
//   node server.mjs --model PATH --threads N --port P [--model-id ID] [--host H]
//                   [--context-size N] [--embeddings] [--adapter PATH --adapter-id ID]...
//
// Each --adapter is a GGUF LoRA of the model, served under the --adapter-id of the same
// position: a chat naming that id runs on a context of its own with the adapter applied
// (llama.cpp binds adapters to contexts), while the base id runs on the plain one.
//
// Endpoints: GET /health, GET /metrics (Prometheus text, runtime-metrics.mjs), GET /v1/models,
// GET /v1/models/{id}, POST /v1/chat/completions (JSON or SSE), POST /v1/embeddings (with
// --embeddings). Every OpenAI parameter is honoured or refused with a 400 naming it
// (openai-request.mjs); `response_format` json_object and json_schema constrain the
// output with a llama.cpp grammar, so it parses whatever the weights. One request line
// per request on stdout; llama.cpp's own messages (errors only) on stderr.

import { createServer } from 'node:http';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { HttpError, parseChatRequest, parseEmbeddingsRequest } from './openai-request.mjs';
import { createRuntimeMetrics } from './runtime-metrics.mjs';

const MAX_BODY_BYTES = 10 * 1024 * 1024;
const DEFAULT_CONTEXT_SIZE = 4096;
// llama.cpp server's default; OpenAI's is 1, which is noisy for small models.
const DEFAULT_TEMPERATURE = 0.8;
const SHUTDOWN_GRACE_MS = 5000;

function usageError(message) {
  process.stderr.write(`server.mjs: ${message}\n`);
  process.exit(2);
}

function parsePositiveInt(name, value, { required = false, fallback } = {}) {
  if (value === undefined) {
    if (required) usageError(`--${name} is required`);
    return fallback;
  }
  if (!/^[0-9]+$/.test(value) || Number(value) < 1)
    usageError(`--${name} must be a positive integer, got "${value}"`);
  return Number(value);
}

function readOptions() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        model: { type: 'string' },
        'model-id': { type: 'string' },
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string' },
        threads: { type: 'string' },
        'context-size': { type: 'string' },
        embeddings: { type: 'boolean', default: false },
        adapter: { type: 'string', multiple: true, default: [] },
        'adapter-id': { type: 'string', multiple: true, default: [] },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    usageError(error.message);
  }
  if (values.model === undefined) usageError('--model PATH is required');
  if (values.threads === undefined) {
    // node-llama-cpp would pick max(cores, 4) threads; on a 2-core host that oversubscription
    // makes generation hundreds of times slower, so the caller must decide.
    usageError(
      '--threads N is required (use the number of physical cores to give the model; 1 on a small host)',
    );
  }
  const port = parsePositiveInt('port', values.port, { required: true });
  if (port > 65535) usageError(`--port must be at most 65535, got ${port}`);
  const modelId = values['model-id'] ?? basename(values.model).replace(/\.gguf$/i, '');
  const adapterIds = values['adapter-id'];
  if (adapterIds.length !== values.adapter.length) {
    usageError(
      `give each --adapter PATH its --adapter-id ID (got ${values.adapter.length} adapters, ${adapterIds.length} ids)`,
    );
  }
  const ids = new Set([modelId]);
  for (const id of adapterIds) {
    if (ids.has(id)) usageError(`--adapter-id ${id} is served twice: give every adapter an id of its own`);
    ids.add(id);
  }
  return {
    modelPath: values.model,
    modelId,
    adapters: values.adapter.map((path, index) => ({ path, id: adapterIds[index] })),
    host: values.host,
    port,
    threads: parsePositiveInt('threads', values.threads, { required: true }),
    contextSize: parsePositiveInt('context-size', values['context-size']),
    embeddings: values.embeddings,
  };
}

const options = readOptions();
const startedAt = Math.floor(Date.now() / 1000);

/** Set once the model is loaded; /health says 503 until then. */
let runtime = null;
let shuttingDown = false;
/** Aborted on shutdown so a long generation does not hold the process. */
const shutdownController = new AbortController();

const metrics = createRuntimeMetrics({ modelId: options.modelId });

// One context sequence serves every request, so requests take turns: a promise chain is
// the whole scheduler, and concurrent clients queue instead of crashing the sequence.
let queueTail = Promise.resolve();
let waiting = 0;
function serialised(task) {
  const queued = process.hrtime.bigint();
  waiting += 1;
  metrics.queueDepth(waiting);
  const result = queueTail.then(() => {
    waiting -= 1;
    metrics.queueDepth(waiting);
    metrics.queueWait(Number(process.hrtime.bigint() - queued) / 1e9);
    return task();
  });
  queueTail = result.catch(() => {});
  return result;
}

async function loadRuntime() {
  // Imported here, after listen, so /health answers 503 during the import as well.
  const { getLlama, LlamaGrammarEvaluationState, LlamaLogLevel, resolveChatWrapper, TokenBias } =
    await import('node-llama-cpp');
  const llama = await getLlama({
    // CPU only, the prebuilt binary shipped next to us or nothing: never download llama.cpp,
    // never build it (an air-gapped host has no compiler toolchain and no network).
    gpu: false,
    build: 'never',
    skipDownload: true,
    usePrebuiltBinaries: true,
    progressLogs: false,
    maxThreads: options.threads,
    logLevel: LlamaLogLevel.error,
    logger: (level, message) => {
      const text = message.trimEnd();
      if (text !== '') process.stderr.write(`llama.cpp ${level}: ${text}\n`);
    },
  });
  const model = await llama.loadModel({ modelPath: options.modelPath, gpuLayers: 0 });
  const contextSize = options.contextSize ?? Math.min(model.trainContextSize, DEFAULT_CONTEXT_SIZE);
  const context = await model.createContext({
    contextSize,
    sequences: 1,
    threads: options.threads,
  });
  // One sequence per served id: the base's, then one per adapter, on a context that applies it.
  const sequences = new Map([[options.modelId, context.getSequence()]]);
  for (const adapter of options.adapters) {
    const adapted = await model.createContext({
      contextSize,
      sequences: 1,
      threads: options.threads,
      lora: { adapters: [{ filePath: adapter.path }] },
    });
    sequences.set(adapter.id, adapted.getSequence());
  }
  const embeddingContext = options.embeddings
    ? await model.createEmbeddingContext({ contextSize, threads: options.threads })
    : null;
  const chatWrapper = resolveChatWrapper(model);
  const vocabularySize = model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length ?? 0;
  return {
    llama,
    model,
    context,
    sequences,
    embeddingContext,
    chatWrapper,
    contextSize,
    vocabularySize,
    LlamaGrammarEvaluationState,
    TokenBias,
    grammars: new Map(),
  };
}

// ---- HTTP plumbing ---------------------------------------------------------------------

function sendJson(res, status, body) {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res, error) {
  const known =
    error instanceof HttpError
      ? error
      : new HttpError(500, error instanceof Error ? error.message : String(error), {
          code: 'internal_error',
        });
  if (!(error instanceof HttpError)) process.stderr.write(`server.mjs: ${error?.stack ?? error}\n`);
  if (res.headersSent) {
    // Mid-stream: the status is gone, so report in-band and close the stream.
    if (!res.writableEnded) {
      res.write(`data: ${JSON.stringify(known.toJSON())}\n\n`);
      res.end();
    }
    return;
  }
  sendJson(res, known.status, known.toJSON());
}

async function readJsonBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES)
      throw new HttpError(413, `request body is over ${MAX_BODY_BYTES} bytes`, { code: 'request_too_large' });
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '')
    throw new HttpError(400, 'request body is empty; send a JSON object', { code: 'invalid_json' });
  let body;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, `request body is not valid JSON: ${error.message}`, { code: 'invalid_json' });
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, 'request body must be a JSON object', { code: 'invalid_json' });
  }
  return body;
}

function requireReady() {
  if (runtime === null)
    throw new HttpError(503, 'the model is still loading; retry when /health says ok', {
      code: 'model_loading',
    });
}

// ---- chat completions --------------------------------------------------------------------

/** Cut the text at the first stop string; returns null while none occurs. */
function cutAtStop(text, stop) {
  let cut = -1;
  for (const s of stop) {
    const at = text.indexOf(s);
    if (at !== -1 && (cut === -1 || at < cut)) cut = at;
  }
  return cut === -1 ? null : text.slice(0, cut);
}

const MAX_CACHED_GRAMMARS = 32;

/** The grammar `response_format` asks for, or null; grammars are cached by their schema text. */
async function grammarFor(responseFormat) {
  if (responseFormat.kind === 'text') return null;
  const { llama, grammars } = runtime;
  const key = responseFormat.kind === 'json_object' ? 'json' : JSON.stringify(responseFormat.schema);
  let grammar = grammars.get(key);
  if (grammar === undefined) {
    try {
      grammar =
        responseFormat.kind === 'json_object'
          ? await llama.getGrammarFor('json')
          : await llama.createGrammarForJsonSchema(responseFormat.schema);
    } catch (error) {
      throw new HttpError(
        400,
        `response_format.json_schema.schema cannot be turned into a grammar: ${error.message}`,
        { code: 'invalid_value', param: 'response_format' },
      );
    }
    if (grammars.size >= MAX_CACHED_GRAMMARS) grammars.delete(grammars.keys().next().value);
    grammars.set(key, grammar);
  }
  return grammar;
}

function tokenLogprob(model, token, probability) {
  const text = model.detokenize([token]);
  return {
    token: text,
    logprob: Math.log(Math.max(probability, Number.MIN_VALUE)),
    bytes: [...Buffer.from(text)],
  };
}

/**
 * Generate one choice. `onText` gets text as it becomes final (never half a UTF-8
 * character, never a prefix of a stop string). Runs inside the queue.
 */
async function generateChoice(request, promptTokens, grammar, { onText, isCancelled }) {
  const { model, contextSize, LlamaGrammarEvaluationState, TokenBias } = runtime;
  const sequence = runtime.sequences.get(request.model);
  const room = contextSize - promptTokens.length;
  const maxTokens = Math.min(request.maxTokens ?? room, room);
  const startedAt = process.hrtime.bigint();
  let firstTokenSeconds = null;

  await sequence.clearHistory();
  const generated = [];
  const logprobs = [];
  let emitted = '';
  let finishReason = 'length';
  const longestStop = Math.max(0, ...request.stop.map((s) => s.length));
  const penalised = request.frequencyPenalty !== 0 || request.presencePenalty !== 0;
  let tokenBias;
  if (request.logitBias !== null) {
    tokenBias = new TokenBias(model.tokenizer);
    for (const [token, bias] of request.logitBias) {
      if (token >= runtime.vocabularySize) {
        throw new HttpError(400, `logit_bias names token ${token}, beyond the vocabulary`, {
          code: 'invalid_value',
          param: 'logit_bias',
        });
      }
      tokenBias.set(token, bias <= -100 ? 'never' : { logit: bias });
    }
  }
  const evaluation = sequence.evaluateWithMetadata(
    promptTokens,
    { probabilities: request.logprobs },
    {
      temperature: request.temperature ?? DEFAULT_TEMPERATURE,
      topP: request.topP,
      seed: request.seed,
      grammarEvaluationState:
        grammar === null ? undefined : new LlamaGrammarEvaluationState({ model, grammar }),
      repeatPenalty: penalised
        ? {
            punishTokens: () => generated,
            maxPunishTokens: Math.max(64, Math.min(maxTokens, 1024)),
            penalty: 1,
            frequencyPenalty: request.frequencyPenalty,
            presencePenalty: request.presencePenalty,
          }
        : undefined,
      tokenBias,
      // The end-of-generation token is generated like any other: it counts in
      // completion_tokens (as llama.cpp's server counts it) but adds no text.
      yieldEogToken: true,
    },
  );
  let endOfGeneration = false;
  for await (const { token, probabilities } of evaluation) {
    firstTokenSeconds ??= Number(process.hrtime.bigint() - startedAt) / 1e9;
    if (model.isEogToken(token)) {
      endOfGeneration = true;
      break;
    }
    generated.push(token);
    if (request.logprobs) {
      const top = [...probabilities.entries()]
        .slice(0, request.topLogprobs)
        .map(([t, p]) => tokenLogprob(model, t, p));
      logprobs.push({ ...tokenLogprob(model, token, probabilities.get(token) ?? 0), top_logprobs: top });
    }
    const text = model.detokenize(generated);
    const stopped = cutAtStop(text, request.stop);
    if (stopped !== null) {
      if (stopped.length > emitted.length) onText(stopped.slice(emitted.length));
      emitted = stopped;
      finishReason = 'stop';
      break;
    }
    // Hold back a possible partial UTF-8 character and a possible start of a stop string.
    const safeEnd = text.endsWith('\uFFFD') ? text.length - 1 : text.length;
    const ready = text.slice(0, Math.max(emitted.length, safeEnd - Math.max(0, longestStop - 1)));
    if (ready.length > emitted.length && ready.startsWith(emitted)) {
      onText(ready.slice(emitted.length));
      emitted = ready;
    }
    if (generated.length >= maxTokens || isCancelled()) break;
  }
  if (finishReason !== 'stop') {
    if (endOfGeneration) finishReason = 'stop';
    // What was held back is final now.
    const text = model.detokenize(generated);
    if (text.length > emitted.length && text.startsWith(emitted)) {
      onText(text.slice(emitted.length));
      emitted = text;
    }
  }
  const completionTokens = generated.length + (endOfGeneration ? 1 : 0);
  metrics.generation({
    completion: completionTokens,
    firstTokenSeconds,
    totalSeconds: Number(process.hrtime.bigint() - startedAt) / 1e9,
  });
  return {
    text: emitted,
    finishReason,
    completionTokens,
    logprobs: request.logprobs ? { content: logprobs, refusal: null } : null,
  };
}

/** Every choice of a request, one after another on the one sequence. Runs inside the queue. */
async function generateChat(request, { onText, onChoiceEnd, isCancelled }) {
  const { model, chatWrapper, contextSize } = runtime;
  const { contextText } = chatWrapper.generateContextState({ chatHistory: request.chatHistory });
  const promptTokens = contextText.tokenize(model.tokenizer);
  if (contextSize - promptTokens.length < 1) {
    throw new HttpError(
      400,
      `the prompt is ${promptTokens.length} tokens and the context holds ${contextSize}; shorten the messages`,
      { code: 'context_length_exceeded', param: 'messages' },
    );
  }
  const grammar = await grammarFor(request.responseFormat);
  metrics.promptTokens('chat', promptTokens.length);
  const choices = [];
  for (let index = 0; index < request.n && !isCancelled(); index++) {
    // A fixed seed would give every choice the same text; each gets its own.
    const seed = request.seed === undefined ? undefined : request.seed + index;
    const choice = await generateChoice({ ...request, seed }, promptTokens, grammar, {
      onText: (text) => onText(index, text),
      isCancelled,
    });
    choices.push(choice);
    onChoiceEnd(index, choice);
  }
  const completionTokens = choices.reduce((sum, c) => sum + c.completionTokens, 0);
  return {
    choices,
    usage: {
      prompt_tokens: promptTokens.length,
      completion_tokens: completionTokens,
      total_tokens: promptTokens.length + completionTokens,
    },
  };
}

async function handleChatCompletions(req, res) {
  requireReady();
  const request = parseChatRequest(await readJsonBody(req), { modelIds: servedIds });
  const id = `chatcmpl-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
  const created = Math.floor(Date.now() / 1000);
  let cancelled = false;
  res.on('close', () => {
    if (!res.writableFinished) cancelled = true;
  });
  const isCancelled = () => cancelled || shutdownController.signal.aborted;

  if (!request.stream) {
    const result = await serialised(() =>
      generateChat(request, { onText: () => {}, onChoiceEnd: () => {}, isCancelled }),
    );
    sendJson(res, 200, {
      id,
      object: 'chat.completion',
      created,
      model: request.model,
      choices: result.choices.map((choice, index) => ({
        index,
        message: { role: 'assistant', content: choice.text, refusal: null },
        logprobs: choice.logprobs,
        finish_reason: choice.finishReason,
      })),
      usage: result.usage,
    });
    return;
  }

  const chunk = (choices, extra = {}) => ({
    id,
    object: 'chat.completion.chunk',
    created,
    model: request.model,
    choices,
    ...extra,
  });
  const writeEvent = (data) => {
    if (!res.writableEnded) res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
  };
  await serialised(async () => {
    // Headers go out with the first text, so a prompt that is too long still gets a plain 400.
    let started = false;
    const opened = new Set();
    const open = (index) => {
      if (!started) {
        started = true;
        res.writeHead(200, {
          'content-type': 'text/event-stream',
          'cache-control': 'no-cache',
          connection: 'keep-alive',
        });
      }
      if (opened.has(index)) return;
      opened.add(index);
      writeEvent(
        chunk([{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]),
      );
    };
    // Logprobs go with the choice's last chunk: the text streams as it is final, which
    // does not line up with tokens (held-back UTF-8 and stop-string prefixes).
    const result = await generateChat(request, {
      onText: (index, text) => {
        open(index);
        writeEvent(chunk([{ index, delta: { content: text }, logprobs: null, finish_reason: null }]));
      },
      onChoiceEnd: (index, choice) => {
        open(index);
        writeEvent(
          chunk([{ index, delta: {}, logprobs: choice.logprobs, finish_reason: choice.finishReason }]),
        );
      },
      isCancelled,
    });
    if (!started) open(0);
    if (request.includeUsage) writeEvent(chunk([], { usage: result.usage }));
    writeEvent('[DONE]');
    res.end();
  });
}

// ---- embeddings --------------------------------------------------------------------------

async function handleEmbeddings(req, res) {
  requireReady();
  const body = await readJsonBody(req);
  const { embeddingContext, model, contextSize } = runtime;
  if (embeddingContext === null) {
    throw new HttpError(400, 'embeddings are not enabled on this server; start it with --embeddings', {
      code: 'embeddings_disabled',
    });
  }
  const { format, inputs } = parseEmbeddingsRequest(body, {
    modelId: options.modelId,
    vocabularySize: runtime.vocabularySize,
    dimension: model.embeddingVectorSize,
  });
  const tokenLists = inputs.map((input) => (typeof input === 'string' ? model.tokenize(input) : input));
  tokenLists.forEach((tokens, index) => {
    if (tokens.length > contextSize) {
      throw new HttpError(
        400,
        `input[${index}] is ${tokens.length} tokens and the context holds ${contextSize}; split it`,
        { code: 'context_length_exceeded', param: 'input' },
      );
    }
  });
  const vectors = await serialised(async () => {
    const out = [];
    for (const tokens of tokenLists) {
      if (shutdownController.signal.aborted)
        throw new HttpError(503, 'the server is shutting down', { code: 'shutting_down' });
      out.push((await embeddingContext.getEmbeddingFor(tokens)).vector);
    }
    return out;
  });
  const promptTokens = tokenLists.reduce((sum, tokens) => sum + tokens.length, 0);
  metrics.promptTokens('embeddings', promptTokens);
  sendJson(res, 200, {
    object: 'list',
    model: options.modelId,
    data: vectors.map((vector, index) => ({
      object: 'embedding',
      index,
      embedding:
        format === 'base64' ? Buffer.from(Float32Array.from(vector).buffer).toString('base64') : [...vector],
    })),
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  });
}

// ---- routing -----------------------------------------------------------------------------

/** The base model's id, then each adapter's: what /v1/models lists and chat requests may name. */
const servedIds = [options.modelId, ...options.adapters.map((adapter) => adapter.id)];

const modelObject = (id) => ({
  id,
  object: 'model',
  created: startedAt,
  owned_by: 'apertus',
  // llama.cpp's server and vLLM name an adapter's base model this way.
  ...(id === options.modelId ? {} : { parent: options.modelId, root: options.modelId }),
});

function handleModel(req, res) {
  const raw = req.url.split('?')[0].slice('/v1/models/'.length);
  let id;
  try {
    id = decodeURIComponent(raw);
  } catch {
    id = raw;
  }
  if (!servedIds.includes(id)) {
    throw new HttpError(
      404,
      `The model \`${id}\` does not exist on this server; it serves ${servedIds.map((m) => `\`${m}\``).join(', ')}.`,
      {
        code: 'model_not_found',
        param: 'model',
      },
    );
  }
  sendJson(res, 200, modelObject(id));
}

const routes = {
  'GET /health': (_req, res) => {
    if (runtime === null || shuttingDown) {
      sendJson(res, 503, { status: shuttingDown ? 'stopping' : 'loading' });
      return;
    }
    sendJson(res, 200, { status: 'ok' });
  },
  'GET /metrics': async (_req, res) => {
    const text = await metrics.render();
    res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text) });
    res.end(text);
  },
  'GET /v1/models': (_req, res) => {
    sendJson(res, 200, { object: 'list', data: servedIds.map(modelObject) });
  },
  'GET /v1/models/:id': handleModel,
  'POST /v1/chat/completions': handleChatCompletions,
  'POST /v1/embeddings': handleEmbeddings,
};

/** The route pattern a path falls under (a bounded metrics label), or null. */
function routeOf(path) {
  if (/^\/v1\/models\/[^/]+$/.test(path)) return '/v1/models/:id';
  return Object.keys(routes).some((route) => route.endsWith(` ${path}`)) ? path : null;
}

const server = createServer((req, res) => {
  const started = process.hrtime.bigint();
  const path = (req.url ?? '/').split('?')[0];
  const route = routeOf(path);
  res.on('close', () => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const status = res.writableFinished ? res.statusCode : `${res.statusCode}-aborted`;
    metrics.request(route ?? 'unmatched', req.method, status, seconds);
    process.stdout.write(
      `${new Date().toISOString()} ${req.method} ${path} ${status} ${(seconds * 1000).toFixed(1)}ms\n`,
    );
  });
  const handler = route === null ? undefined : routes[`${req.method} ${route}`];
  if (handler === undefined) {
    if (route !== null)
      sendError(
        res,
        new HttpError(405, `${req.method} is not allowed on ${path}`, { code: 'method_not_allowed' }),
      );
    else sendError(res, new HttpError(404, `no route for ${req.method} ${path}`, { code: 'unknown_url' }));
    req.resume();
    return;
  }
  if (shuttingDown && path !== '/health' && path !== '/metrics') {
    sendError(res, new HttpError(503, 'the server is shutting down', { code: 'shutting_down' }));
    req.resume();
    return;
  }
  Promise.resolve()
    .then(() => handler(req, res))
    .catch((error) => sendError(res, error));
});
server.keepAliveTimeout = 5000;

async function shutdown(signal) {
  if (shuttingDown) return;
  shuttingDown = true;
  process.stdout.write(`${new Date().toISOString()} ${signal}: shutting down\n`);
  shutdownController.abort();
  const force = setTimeout(() => process.exit(0), SHUTDOWN_GRACE_MS);
  force.unref();
  server.close();
  server.closeIdleConnections();
  try {
    await queueTail;
    await runtime?.llama.dispose();
  } finally {
    process.exit(0);
  }
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));

server.on('error', (error) => {
  process.stderr.write(`server.mjs: cannot listen on ${options.host}:${options.port}: ${error.message}\n`);
  process.exit(1);
});

server.listen(options.port, options.host, () => {
  process.stdout.write(
    `${new Date().toISOString()} listening on http://${options.host}:${options.port} ` +
      `(model ${options.modelId}${options.adapters.length > 0 ? `, adapters ${options.adapters.map((a) => a.id).join(', ')}` : ''}, threads ${options.threads}, loading)\n`,
  );
  const loadStarted = Date.now();
  loadRuntime()
    .then((loaded) => {
      if (shuttingDown) return;
      runtime = loaded;
      metrics.modelLoaded((Date.now() - loadStarted) / 1000);
      process.stdout.write(
        `${new Date().toISOString()} model loaded in ${Date.now() - loadStarted}ms ` +
          `(context ${loaded.contextSize}, embeddings ${loaded.embeddingContext ? 'on' : 'off'})\n`,
      );
    })
    .catch((error) => {
      process.stderr.write(`server.mjs: cannot load model ${options.modelPath}: ${error?.stack ?? error}\n`);
      process.exit(1);
    });
});
