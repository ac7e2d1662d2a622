#!/usr/bin/env node
// apertus llamacpp runtime: a small OpenAI-compatible HTTP server over node-llama-cpp.
//
// Plain JavaScript on purpose: it runs on the air-gapped host with the Node binary the
// bundle ships, next to the node_modules closure apertus collects (no compile step there).
//
//   node server.mjs --model PATH --threads N --port P [--model-id ID] [--host H]
//                   [--context-size N] [--embeddings]
//
// Endpoints: GET /health, GET /v1/models, POST /v1/chat/completions (JSON or SSE),
// POST /v1/embeddings (with --embeddings). One request line per request on stdout;
// llama.cpp's own messages (errors only) on stderr.

import { createServer } from 'node:http';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';

const MAX_BODY_BYTES = 10 * 1024 * 1024;
const DEFAULT_CONTEXT_SIZE = 4096;
// llama.cpp server's default; OpenAI's is 1, which is noisy for small models.
const DEFAULT_TEMPERATURE = 0.8;
const SHUTDOWN_GRACE_MS = 5000;

class HttpError extends Error {
  constructor(status, message, type = 'invalid_request_error', param = null) {
    super(message);
    this.status = status;
    this.type = type;
    this.param = param;
  }
}

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
  return {
    modelPath: values.model,
    modelId: values['model-id'] ?? basename(values.model).replace(/\.gguf$/i, ''),
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

// One context sequence serves every request, so requests take turns: a promise chain is
// the whole scheduler, and concurrent clients queue instead of crashing the sequence.
let queueTail = Promise.resolve();
function serialised(task) {
  const result = queueTail.then(task);
  queueTail = result.catch(() => {});
  return result;
}

async function loadRuntime() {
  // Imported here, after listen, so /health answers 503 during the import as well.
  const { getLlama, LlamaLogLevel, resolveChatWrapper } = await import('node-llama-cpp');
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
  const sequence = context.getSequence();
  const embeddingContext = options.embeddings
    ? await model.createEmbeddingContext({ contextSize, threads: options.threads })
    : null;
  const chatWrapper = resolveChatWrapper(model);
  const vocabularySize = model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length ?? 0;
  return { llama, model, context, sequence, embeddingContext, chatWrapper, contextSize, vocabularySize };
}

// ---- HTTP plumbing ---------------------------------------------------------------------

function sendJson(res, status, body) {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res, error) {
  if (error instanceof HttpError) {
    sendJson(res, error.status, {
      error: { message: error.message, type: error.type, param: error.param, code: null },
    });
    return;
  }
  process.stderr.write(`server.mjs: ${error?.stack ?? error}\n`);
  const message = error instanceof Error ? error.message : String(error);
  if (res.headersSent) {
    // Mid-stream: the status is gone, so report in-band and close the stream.
    if (!res.writableEnded) {
      res.write(`data: ${JSON.stringify({ error: { message, type: 'server_error' } })}\n\n`);
      res.end();
    }
    return;
  }
  sendJson(res, 500, { error: { message, type: 'server_error', param: null, code: null } });
}

async function readJsonBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `request body is over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new HttpError(400, 'request body is empty; send a JSON object');
  let body;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, `request body is not valid JSON: ${error.message}`);
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, 'request body must be a JSON object');
  }
  return body;
}

function requireReady() {
  if (runtime === null)
    throw new HttpError(503, 'the model is still loading; retry when /health says ok', 'unavailable');
}

function optionalNumber(body, name, { min, max, integer = false } = {}) {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new HttpError(
      400,
      `${name} must be ${integer ? 'an integer' : 'a number'}`,
      'invalid_request_error',
      name,
    );
  }
  if ((min !== undefined && value < min) || (max !== undefined && value > max)) {
    throw new HttpError(400, `${name} must be between ${min} and ${max}`, 'invalid_request_error', name);
  }
  return value;
}

// ---- chat completions --------------------------------------------------------------------

function messageText(content, index) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part) => {
        if (part?.type === 'text' && typeof part.text === 'string') return part.text;
        throw new HttpError(
          400,
          `messages[${index}].content: only text parts are supported`,
          undefined,
          'messages',
        );
      })
      .join('');
  }
  if (content === null || content === undefined) return '';
  throw new HttpError(
    400,
    `messages[${index}].content must be a string or an array of text parts`,
    undefined,
    'messages',
  );
}

function toChatHistory(messages) {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new HttpError(400, 'messages must be a non-empty array', undefined, 'messages');
  }
  return messages.map((message, index) => {
    const text = messageText(message?.content, index);
    switch (message?.role) {
      case 'system':
      case 'developer':
        return { type: 'system', text };
      case 'user':
        return { type: 'user', text };
      case 'assistant':
        return { type: 'model', response: [text] };
      default:
        throw new HttpError(
          400,
          `messages[${index}].role must be system, developer, user or assistant`,
          undefined,
          'messages',
        );
    }
  });
}

function readStopStrings(body) {
  const { stop } = body;
  if (stop === undefined || stop === null) return [];
  const list = typeof stop === 'string' ? [stop] : stop;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string' || s === '')) {
    throw new HttpError(400, 'stop must be a non-empty string or an array of them', undefined, 'stop');
  }
  return list;
}

function parseChatRequest(body) {
  const chatHistory = toChatHistory(body.messages);
  if (body.model !== undefined && typeof body.model !== 'string') {
    throw new HttpError(400, 'model must be a string', undefined, 'model');
  }
  // One context sequence, one choice: n > 1 would silently return fewer choices.
  optionalNumber(body, 'n', { min: 1, max: 1, integer: true });
  return {
    chatHistory,
    stream: body.stream === true,
    includeUsage: body.stream_options?.include_usage === true,
    maxTokens:
      optionalNumber(body, 'max_completion_tokens', { min: 1, integer: true }) ??
      optionalNumber(body, 'max_tokens', { min: 1, integer: true }),
    temperature: optionalNumber(body, 'temperature', { min: 0, max: 2 }) ?? DEFAULT_TEMPERATURE,
    topP: optionalNumber(body, 'top_p', { min: 0, max: 1 }),
    seed: optionalNumber(body, 'seed', { integer: true }),
    stop: readStopStrings(body),
  };
}

/** Cut the text at the first stop string; returns null while none occurs. */
function cutAtStop(text, stop) {
  let cut = -1;
  for (const s of stop) {
    const at = text.indexOf(s);
    if (at !== -1 && (cut === -1 || at < cut)) cut = at;
  }
  return cut === -1 ? null : text.slice(0, cut);
}

/**
 * Generate a reply. `onText` gets text as it becomes final (never half a UTF-8 character,
 * never a prefix of a stop string). Runs inside the queue.
 */
async function generateChat(request, { onText, isCancelled }) {
  const { model, sequence, chatWrapper, contextSize } = runtime;
  const { contextText } = chatWrapper.generateContextState({ chatHistory: request.chatHistory });
  const promptTokens = contextText.tokenize(model.tokenizer);
  const room = contextSize - promptTokens.length;
  if (room < 1) {
    throw new HttpError(
      400,
      `the prompt is ${promptTokens.length} tokens and the context holds ${contextSize}; shorten the messages`,
      'invalid_request_error',
      'messages',
    );
  }
  const maxTokens = Math.min(request.maxTokens ?? room, room);

  await sequence.clearHistory();
  const generated = [];
  let emitted = '';
  let finishReason = 'length';
  const longestStop = Math.max(0, ...request.stop.map((s) => s.length));
  const evaluation = sequence.evaluate(promptTokens, {
    temperature: request.temperature,
    topP: request.topP,
    seed: request.seed,
    // The end-of-generation token is generated like any other: it counts in
    // completion_tokens (as llama.cpp's server counts it) but adds no text.
    yieldEogToken: true,
  });
  let endOfGeneration = false;
  for await (const token of evaluation) {
    if (model.isEogToken(token)) {
      endOfGeneration = true;
      break;
    }
    generated.push(token);
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
  return {
    text: emitted,
    finishReason,
    usage: {
      prompt_tokens: promptTokens.length,
      completion_tokens: completionTokens,
      total_tokens: promptTokens.length + completionTokens,
    },
  };
}

async function handleChatCompletions(req, res) {
  requireReady();
  const request = parseChatRequest(await readJsonBody(req));
  const id = `chatcmpl-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
  const created = Math.floor(Date.now() / 1000);
  let cancelled = false;
  res.on('close', () => {
    if (!res.writableFinished) cancelled = true;
  });
  const isCancelled = () => cancelled || shutdownController.signal.aborted;

  if (!request.stream) {
    const result = await serialised(() => generateChat(request, { onText: () => {}, isCancelled }));
    sendJson(res, 200, {
      id,
      object: 'chat.completion',
      created,
      model: options.modelId,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: result.text },
          logprobs: null,
          finish_reason: result.finishReason,
        },
      ],
      usage: result.usage,
    });
    return;
  }

  const chunk = (choices, extra = {}) => ({
    id,
    object: 'chat.completion.chunk',
    created,
    model: options.modelId,
    choices,
    ...extra,
  });
  const writeEvent = (data) => {
    if (!res.writableEnded) res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
  };
  await serialised(async () => {
    // Headers go out with the first text, so a prompt that is too long still gets a plain 400.
    let started = false;
    const start = () => {
      if (started) return;
      started = true;
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
      });
      writeEvent(
        chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]),
      );
    };
    const result = await generateChat(request, {
      onText: (text) => {
        start();
        writeEvent(chunk([{ index: 0, delta: { content: text }, logprobs: null, finish_reason: null }]));
      },
      isCancelled,
    });
    start();
    writeEvent(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: result.finishReason }]));
    if (request.includeUsage) writeEvent(chunk([], { usage: result.usage }));
    writeEvent('[DONE]');
    res.end();
  });
}

// ---- embeddings --------------------------------------------------------------------------

function parseEmbeddingInputs(input, vocabularySize) {
  // Token ids outside the vocabulary would trip an assertion inside llama.cpp and take the
  // process down, so they are checked here (and refused when the size is unknown).
  const isTokenList = (v) =>
    Array.isArray(v) && v.length > 0 && v.every((t) => Number.isInteger(t) && t >= 0 && t < vocabularySize);
  if (typeof input === 'string') return [input];
  if (isTokenList(input)) return [input];
  if (Array.isArray(input) && input.length > 0) {
    if (input.every((item) => typeof item === 'string')) return input;
    if (input.every(isTokenList)) return input;
  }
  throw new HttpError(
    400,
    'input must be a string, a non-empty array of strings, or token id arrays',
    'invalid_request_error',
    'input',
  );
}

async function handleEmbeddings(req, res) {
  requireReady();
  const body = await readJsonBody(req);
  const { embeddingContext, model, contextSize } = runtime;
  if (embeddingContext === null) {
    throw new HttpError(
      501,
      'embeddings are not enabled on this server; start it with --embeddings',
      'not_supported',
    );
  }
  const format = body.encoding_format ?? 'float';
  if (format !== 'float' && format !== 'base64') {
    throw new HttpError(400, 'encoding_format must be "float" or "base64"', undefined, 'encoding_format');
  }
  const inputs = parseEmbeddingInputs(body.input, runtime.vocabularySize);
  const tokenLists = inputs.map((input) => (typeof input === 'string' ? model.tokenize(input) : input));
  tokenLists.forEach((tokens, index) => {
    if (tokens.length > contextSize) {
      throw new HttpError(
        400,
        `input[${index}] is ${tokens.length} tokens and the context holds ${contextSize}; split it`,
        undefined,
        'input',
      );
    }
  });
  const vectors = await serialised(async () => {
    const out = [];
    for (const tokens of tokenLists) {
      if (shutdownController.signal.aborted)
        throw new HttpError(503, 'the server is shutting down', 'unavailable');
      out.push((await embeddingContext.getEmbeddingFor(tokens)).vector);
    }
    return out;
  });
  const promptTokens = tokenLists.reduce((sum, tokens) => sum + tokens.length, 0);
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

const routes = {
  'GET /health': (_req, res) => {
    if (runtime === null || shuttingDown) {
      sendJson(res, 503, { status: shuttingDown ? 'stopping' : 'loading' });
      return;
    }
    sendJson(res, 200, { status: 'ok' });
  },
  'GET /v1/models': (_req, res) => {
    sendJson(res, 200, {
      object: 'list',
      data: [{ id: options.modelId, object: 'model', created: startedAt, owned_by: 'apertus' }],
    });
  },
  'POST /v1/chat/completions': handleChatCompletions,
  'POST /v1/embeddings': handleEmbeddings,
};

const server = createServer((req, res) => {
  const started = process.hrtime.bigint();
  const path = (req.url ?? '/').split('?')[0];
  res.on('close', () => {
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const status = res.writableFinished ? res.statusCode : `${res.statusCode}-aborted`;
    process.stdout.write(`${new Date().toISOString()} ${req.method} ${path} ${status} ${ms.toFixed(1)}ms\n`);
  });
  const handler = routes[`${req.method} ${path}`];
  if (handler === undefined) {
    const known = Object.keys(routes).some((route) => route.endsWith(` ${path}`));
    if (known) sendError(res, new HttpError(405, `${req.method} is not allowed on ${path}`));
    else sendError(res, new HttpError(404, `no route for ${req.method} ${path}`, 'not_found'));
    req.resume();
    return;
  }
  if (shuttingDown && path !== '/health') {
    sendError(res, new HttpError(503, 'the server is shutting down', 'unavailable'));
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
      `(model ${options.modelId}, threads ${options.threads}, loading)\n`,
  );
  const loadStarted = Date.now();
  loadRuntime()
    .then((loaded) => {
      if (shuttingDown) return;
      runtime = loaded;
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
