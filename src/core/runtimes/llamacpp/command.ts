/**
 * The llamacpp runtime: our OpenAI-compatible server (templates/runtime/server.mjs) over
 * node-llama-cpp, run by the Node binary the bundle ships.
 */
import { serviceInteger } from '../service-check.js';
import type { LlamacppServiceSpec } from './spec.js';

export interface LlamacppPaths {
  /** The shipped Node binary on the host. */
  node: string;
  /** server.mjs on the host. */
  server: string;
  /** The GGUF file on the host. */
  modelPath: string;
  /** Each GGUF LoRA adapter on the host and the id it is served under. */
  adapters?: ReadonlyArray<{ id: string; path: string }>;
}

/**
 * The server's argv, program first. Threads are always passed: node-llama-cpp's own
 * default (at least 4) oversubscribes small hosts and runs hundreds of times slower.
 * The server listens on loopback unless `host` says otherwise; the RAG service and the
 * installer's checks reach it there. The numbers were validated when the bundle was
 * loaded; they are checked again here, where they become arguments.
 */
export function renderLlamacppCommand(
  service: LlamacppServiceSpec,
  paths: LlamacppPaths,
  options: { host?: string } = {},
): string[] {
  return [
    paths.node,
    paths.server,
    '--model',
    paths.modelPath,
    '--model-id',
    service.model.id,
    '--host',
    options.host ?? '127.0.0.1',
    '--port',
    serviceInteger(service, 'port', service.port, 1, 65535),
    '--threads',
    serviceInteger(service, 'threads', service.threads, 1, 1024),
    '--context-size',
    serviceInteger(service, 'contextSize', service.contextSize, 1, 16 * 1024 * 1024),
    ...(service.embeddings ? ['--embeddings'] : []),
    // Two flags rather than ID=PATH: a model id and a path may both hold '='.
    ...(paths.adapters ?? []).flatMap((adapter) => ['--adapter', adapter.path, '--adapter-id', adapter.id]),
  ];
}
