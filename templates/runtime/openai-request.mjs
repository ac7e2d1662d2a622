// OpenAI request checking for the llamacpp runtime server: every parameter of a chat or
// embeddings request is either honoured or refused with a 400 that names it. Clients
// (the `openai` SDK, LangChain, LlamaIndex) send what their users asked for; answering
// 200 while dropping `tools` or `response_format` hands back output the caller did not
// ask for, with nothing to tell them so.
//
// Errors have OpenAI's shape: `type` is one of OpenAI's (invalid_request_error for every
// 4xx, as OpenAI itself answers an unknown model; server_error for 5xx) and `code` says
// which case it is, so a client can branch on it.

export class HttpError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   * @param {{ code: string, param?: string | null, type?: string }} details
   */
  constructor(status, message, { code, param = null, type } = {}) {
    super(message);
    this.status = status;
    this.code = code ?? (status >= 500 ? 'internal_error' : 'invalid_request');
    this.param = param;
    this.type = type ?? (status >= 500 ? 'server_error' : 'invalid_request_error');
  }

  toJSON() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

const invalid = (param, message, code = 'invalid_value') => new HttpError(400, message, { code, param });
const unsupported = (param, message) => new HttpError(400, message, { code: 'unsupported_parameter', param });

/**
 * The model a request names, one of `modelIds` (the first when it names none); else a 404
 * as OpenAI answers it, so the SDKs raise their NotFoundError.
 */
export function checkModel(body, modelIds) {
  const ids = typeof modelIds === 'string' ? [modelIds] : modelIds;
  if (body.model === undefined) return ids[0];
  if (typeof body.model !== 'string') throw invalid('model', 'model must be a string');
  if (!ids.includes(body.model)) {
    const served = ids.map((id) => `\`${id}\``).join(', ');
    throw new HttpError(
      404,
      `The model \`${body.model}\` does not exist on this server; it serves ${served} (GET /v1/models lists ${ids.length > 1 ? 'them' : 'it'}).`,
      { code: 'model_not_found', param: 'model' },
    );
  }
  return body.model;
}

/** Top-level keys nobody has implemented here get refused, as OpenAI refuses unknown arguments. */
function refuseUnknown(body, known, what) {
  for (const name of Object.keys(body)) {
    if (!known.has(name)) {
      throw new HttpError(400, `Unrecognized request argument supplied to ${what}: ${name}`, {
        code: 'unknown_parameter',
        param: name,
      });
    }
  }
}

export function optionalNumber(body, name, { min, max, integer = false } = {}) {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw invalid(name, `${name} must be ${integer ? 'an integer' : 'a number'}`, 'invalid_type');
  }
  if ((min !== undefined && value < min) || (max !== undefined && value > max)) {
    const range =
      max === undefined ? `at least ${min}` : min === undefined ? `at most ${max}` : `from ${min} to ${max}`;
    throw invalid(name, `${name} must be ${range}, got ${value}`);
  }
  return value;
}

function optionalBoolean(body, name) {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw invalid(name, `${name} must be true or false`, 'invalid_type');
  return value;
}

// ---- chat ------------------------------------------------------------------------------------

/** The most choices one request may ask for: they are generated one after another. */
export const MAX_CHOICES = 8;
/** OpenAI's own limit. */
const MAX_TOP_LOGPROBS = 20;

const CHAT_PARAMETERS = new Set([
  'model',
  'messages',
  'stream',
  'stream_options',
  'max_tokens',
  'max_completion_tokens',
  'temperature',
  'top_p',
  'seed',
  'stop',
  'n',
  'frequency_penalty',
  'presence_penalty',
  'logit_bias',
  'logprobs',
  'top_logprobs',
  'response_format',
  'tools',
  'tool_choice',
  'parallel_tool_calls',
  'functions',
  'function_call',
  // Bookkeeping for OpenAI's platform; nothing for a model to do.
  'user',
  'store',
  'metadata',
  'service_tier',
  'prompt_cache_key',
  'safety_identifier',
  'modalities',
  'audio',
  'prediction',
  'reasoning_effort',
  'web_search_options',
  'verbosity',
]);

function messageText(content, index) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part) => {
        if (part?.type === 'text' && typeof part.text === 'string') return part.text;
        throw invalid(
          'messages',
          `messages[${index}].content: only text parts are supported (got ${JSON.stringify(part?.type ?? null)})`,
          'unsupported_value',
        );
      })
      .join('');
  }
  if (content === null || content === undefined) return '';
  throw invalid('messages', `messages[${index}].content must be a string or an array of text parts`);
}

function toChatHistory(messages) {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw invalid('messages', 'messages must be a non-empty array');
  }
  return messages.map((message, index) => {
    if (message?.tool_calls !== undefined || message?.function_call !== undefined) {
      throw unsupported('messages', `messages[${index}] holds tool calls; this runtime does not call tools`);
    }
    const text = messageText(message?.content, index);
    switch (message?.role) {
      case 'system':
      case 'developer':
        return { type: 'system', text };
      case 'user':
        return { type: 'user', text };
      case 'assistant':
        return { type: 'model', response: [text] };
      case 'tool':
      case 'function':
        throw unsupported(
          'messages',
          `messages[${index}] is a ${message.role} result; this runtime does not call tools`,
        );
      default:
        throw invalid('messages', `messages[${index}].role must be system, developer, user or assistant`);
    }
  });
}

function readStopStrings(body) {
  const { stop } = body;
  if (stop === undefined || stop === null) return [];
  const list = typeof stop === 'string' ? [stop] : stop;
  if (!Array.isArray(list) || list.length > 4 || list.some((s) => typeof s !== 'string' || s === '')) {
    throw invalid('stop', 'stop must be a non-empty string or an array of at most 4 of them');
  }
  return list;
}

/** `{ kind: 'text' }`, `{ kind: 'json_object' }` or `{ kind: 'json_schema', schema }`. */
function readResponseFormat(body) {
  const format = body.response_format;
  if (format === undefined || format === null) return { kind: 'text' };
  if (typeof format !== 'object' || Array.isArray(format)) {
    throw invalid('response_format', 'response_format must be an object with a type');
  }
  switch (format.type) {
    case 'text':
      return { kind: 'text' };
    case 'json_object':
      return { kind: 'json_object' };
    case 'json_schema': {
      const schema = format.json_schema?.schema;
      if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) {
        throw invalid('response_format', 'response_format.json_schema.schema must be a JSON Schema object');
      }
      return { kind: 'json_schema', schema: grammarSchema(schema) };
    }
    default:
      throw invalid(
        'response_format',
        `response_format.type must be text, json_object or json_schema, got ${JSON.stringify(format.type)}`,
        'unsupported_value',
      );
  }
}

// ---- JSON Schema for the grammar -------------------------------------------------------------

const SCHEMA_TYPES = new Set(['string', 'number', 'integer', 'boolean', 'null', 'object', 'array']);
/** Keywords node-llama-cpp's grammar enforces (its GbnfJsonSchema type). */
const GRAMMAR_KEYWORDS = new Set([
  'type',
  'const',
  'enum',
  'oneOf',
  'properties',
  'required',
  'additionalProperties',
  'minProperties',
  'maxProperties',
  'items',
  'prefixItems',
  'minItems',
  'maxItems',
  'minLength',
  'maxLength',
  'format',
  '$defs',
  '$ref',
  'description',
]);
/** Annotations: they say nothing about which output is valid, so dropping them loses nothing. */
const ANNOTATIONS = new Set([
  'title',
  'default',
  'examples',
  '$schema',
  '$comment',
  '$id',
  'deprecated',
  'readOnly',
  'writeOnly',
]);
const MAX_SCHEMA_NODES = 2000;
const MAX_SCHEMA_DEPTH = 32;

/**
 * The schema as node-llama-cpp's grammar takes it, or a 400 naming the first keyword it
 * would not enforce (`pattern`, `minimum`, ...): silently dropping one would hand back
 * output that breaks the schema. `anyOf` becomes `oneOf` (for generation both are "one
 * of these shapes"); annotations are dropped. Size and depth are bounded, as building a
 * grammar costs time and memory on the server.
 */
export function grammarSchema(schema) {
  let nodes = 0;
  const refuse = (at, why) =>
    invalid('response_format', `response_format.json_schema.schema${at}: ${why}`, 'unsupported_value');
  const walk = (node, at, depth) => {
    nodes += 1;
    if (nodes > MAX_SCHEMA_NODES) throw refuse('', `more than ${MAX_SCHEMA_NODES} subschemas`);
    if (depth > MAX_SCHEMA_DEPTH) throw refuse(at, `nested deeper than ${MAX_SCHEMA_DEPTH}`);
    if (node === null || typeof node !== 'object' || Array.isArray(node))
      throw refuse(at, 'must be a schema object');
    const out = {};
    for (const [key, value] of Object.entries(node)) {
      if (ANNOTATIONS.has(key)) continue;
      const name = key === 'anyOf' ? 'oneOf' : key;
      if (!GRAMMAR_KEYWORDS.has(name)) {
        throw refuse(
          at,
          `the keyword "${key}" cannot be enforced by the grammar, so the output could break it; leave it out`,
        );
      }
      const here = `${at}.${key}`;
      switch (name) {
        case 'type': {
          const types = Array.isArray(value) ? value : [value];
          if (types.length === 0 || !types.every((t) => SCHEMA_TYPES.has(t))) {
            throw refuse(
              here,
              `must be one of ${[...SCHEMA_TYPES].join(', ')} or a list of them, got ${JSON.stringify(value)}`,
            );
          }
          out.type = value;
          break;
        }
        case 'oneOf':
        case 'prefixItems':
          if (!Array.isArray(value) || value.length === 0)
            throw refuse(here, 'must be a non-empty list of schemas');
          out[name] = value.map((v, i) => walk(v, `${here}[${i}]`, depth + 1));
          break;
        case 'properties':
        case '$defs':
          if (value === null || typeof value !== 'object' || Array.isArray(value))
            throw refuse(here, 'must be an object of schemas');
          out[name] = Object.fromEntries(
            Object.entries(value).map(([k, v]) => [k, walk(v, `${here}.${k}`, depth + 1)]),
          );
          break;
        case 'items':
          out.items = walk(value, here, depth + 1);
          break;
        case 'additionalProperties':
          out.additionalProperties = typeof value === 'boolean' ? value : walk(value, here, depth + 1);
          break;
        case '$ref':
          if (typeof value !== 'string' || !/^#\/\$defs\/[^/]+$/.test(value))
            throw refuse(here, 'must point into #/$defs/');
          out.$ref = value;
          break;
        default:
          out[name] = value;
      }
    }
    return out;
  };
  return walk(schema, '', 0);
}

/** Tools are refused, loudly: node-llama-cpp calls functions only through its chat session, not per request. */
function refuseTools(body) {
  if (Array.isArray(body.tools) ? body.tools.length > 0 : body.tools !== undefined && body.tools !== null) {
    throw unsupported(
      'tools',
      'tools are not supported by the CPU runtime (llamacpp); serve the model with vLLM for tool calling, or leave tools out',
    );
  }
  if (body.tool_choice !== undefined && body.tool_choice !== null && body.tool_choice !== 'none') {
    throw unsupported('tool_choice', 'tool_choice needs tools, which the CPU runtime does not support');
  }
  if (Array.isArray(body.functions) ? body.functions.length > 0 : body.functions != null) {
    throw unsupported('functions', 'functions are not supported by the CPU runtime (llamacpp)');
  }
  if (body.function_call !== undefined && body.function_call !== null && body.function_call !== 'none') {
    throw unsupported('function_call', 'function_call is not supported by the CPU runtime (llamacpp)');
  }
}

function readLogitBias(body) {
  const bias = body.logit_bias;
  if (bias === undefined || bias === null) return null;
  if (typeof bias !== 'object' || Array.isArray(bias)) {
    throw invalid('logit_bias', 'logit_bias must be an object of token id to bias');
  }
  const entries = Object.entries(bias).map(([token, value]) => {
    if (!/^[0-9]+$/.test(token) || typeof value !== 'number' || value < -100 || value > 100) {
      throw invalid('logit_bias', 'logit_bias maps token ids to numbers from -100 to 100');
    }
    return [Number(token), value];
  });
  return entries.length === 0 ? null : entries;
}

/** A checked chat request, or a 400/404 naming the parameter at fault. */
export function parseChatRequest(body, { modelIds }) {
  refuseUnknown(body, CHAT_PARAMETERS, '/v1/chat/completions');
  const model = checkModel(body, modelIds);
  refuseTools(body);
  for (const name of ['audio', 'prediction', 'web_search_options']) {
    if (body[name] !== undefined && body[name] !== null) {
      throw unsupported(name, `${name} is not supported by this runtime`);
    }
  }
  if (
    body.modalities != null &&
    !(Array.isArray(body.modalities) && body.modalities.every((m) => m === 'text'))
  ) {
    throw unsupported('modalities', 'this runtime answers text only: modalities may only be ["text"]');
  }
  const logprobs = optionalBoolean(body, 'logprobs') ?? false;
  const topLogprobs = optionalNumber(body, 'top_logprobs', { min: 0, max: MAX_TOP_LOGPROBS, integer: true });
  if (topLogprobs !== undefined && !logprobs) {
    throw invalid('top_logprobs', 'top_logprobs needs logprobs: true');
  }
  const stream = optionalBoolean(body, 'stream') ?? false;
  if (body.stream_options != null && !stream) {
    throw invalid('stream_options', 'stream_options is only allowed with stream: true');
  }
  return {
    model,
    chatHistory: toChatHistory(body.messages),
    stream,
    includeUsage: body.stream_options?.include_usage === true,
    n: optionalNumber(body, 'n', { min: 1, max: MAX_CHOICES, integer: true }) ?? 1,
    maxTokens:
      optionalNumber(body, 'max_completion_tokens', { min: 1, integer: true }) ??
      optionalNumber(body, 'max_tokens', { min: 1, integer: true }),
    temperature: optionalNumber(body, 'temperature', { min: 0, max: 2 }),
    topP: optionalNumber(body, 'top_p', { min: 0, max: 1 }),
    seed: optionalNumber(body, 'seed', { integer: true }),
    frequencyPenalty: optionalNumber(body, 'frequency_penalty', { min: -2, max: 2 }) ?? 0,
    presencePenalty: optionalNumber(body, 'presence_penalty', { min: -2, max: 2 }) ?? 0,
    logitBias: readLogitBias(body),
    logprobs,
    topLogprobs: topLogprobs ?? 0,
    stop: readStopStrings(body),
    responseFormat: readResponseFormat(body),
  };
}

// ---- embeddings --------------------------------------------------------------------------------

const EMBEDDING_PARAMETERS = new Set(['model', 'input', 'encoding_format', 'dimensions', 'user']);

/**
 * A checked embeddings request. `dimensions` is honoured only when it is the model's own
 * size: cutting a vector short is right only for models trained for it (Matryoshka), and
 * the server cannot tell which those are.
 */
export function parseEmbeddingsRequest(body, { modelId, vocabularySize, dimension }) {
  refuseUnknown(body, EMBEDDING_PARAMETERS, '/v1/embeddings');
  checkModel(body, modelId);
  const format = body.encoding_format ?? 'float';
  if (format !== 'float' && format !== 'base64') {
    throw invalid('encoding_format', 'encoding_format must be "float" or "base64"', 'unsupported_value');
  }
  const dimensions = optionalNumber(body, 'dimensions', { min: 1, integer: true });
  if (dimensions !== undefined && dimensions !== dimension) {
    throw unsupported(
      'dimensions',
      `dimensions ${dimensions} is not supported: this model's embeddings have ${dimension} dimensions and it cannot shorten them`,
    );
  }
  return { format, inputs: parseEmbeddingInputs(body.input, vocabularySize) };
}

function parseEmbeddingInputs(input, vocabularySize) {
  // Token ids outside the vocabulary would trip an assertion inside llama.cpp and take the
  // process down, so they are checked here (and refused when the size is unknown).
  const isTokenList = (v) =>
    Array.isArray(v) && v.length > 0 && v.every((t) => Number.isInteger(t) && t >= 0 && t < vocabularySize);
  const isText = (v) => typeof v === 'string' && v !== '';
  if (
    input === '' ||
    (Array.isArray(input) && input.some((item) => item === '' || (Array.isArray(item) && item.length === 0)))
  ) {
    throw invalid('input', 'input must not be empty: an empty string has no embedding');
  }
  if (isText(input) || isTokenList(input)) return [input];
  if (Array.isArray(input) && input.length > 0 && input.length <= 2048) {
    if (input.every(isText)) return input;
    if (input.every(isTokenList)) return input;
  }
  throw invalid(
    'input',
    'input must be a non-empty string, a non-empty array of them (at most 2048), or token id arrays',
  );
}
