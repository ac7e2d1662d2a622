/**
 * The RAG service (templates/rag/server.mjs): where its files travel in the bundle, where
 * its data lives on a host, the command that starts it, and the install-time check that
 * its collection is locked to the embedding model the bundle brings.
 *
 * Its files go into the runtime component's tree layer under `rag/`, and it runs on the
 * same shipped Node binary as the llamacpp server. The npm packages it loads (prom-client
 * for /metrics, and RAG_PACKAGES: usearch for the store's ANN index, the pgvector client
 * and the PDF and DOCX readers) join node-llama-cpp's closure in the runtime directory's
 * node_modules, where Node finds them from rag/ by its usual lookup. It imports the
 * RAG_PACKAGES only when used, so a small embedded store and plain text need none of them.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import posixPath from 'node:path/posix';
import { auditCheckpointsPath } from '../../audit/checkpoints.js';
import { ApertusError } from '../../errors.js';
import { shellQuote } from '../../host/shell-quote.js';
import type { Transport } from '../../host/transport.js';
import type { RuntimeTreeFile } from '../runtime-files.js';
import { serviceInteger } from '../service-check.js';
import type { RagServiceSpec } from './spec.js';

/** The service's modules, in templates/rag/ and under RAG_DIR in the runtime directory. */
export const RAG_FILES = [
  'server.mjs',
  'ann-index.mjs',
  'ann-worker.mjs',
  'audit-log.mjs',
  'document-readers.mjs',
  'documents.mjs',
  'metrics.mjs',
  'pgvector-store.mjs',
  'qdrant-store.mjs',
  'runtime-client.mjs',
  'vector-store.mjs',
] as const;

/** npm packages the service imports (on demand), shipped in the runtime tree's node_modules. */
export const RAG_PACKAGES = ['usearch', 'pg', 'unpdf', 'mammoth'] as const;

/** Paths inside the runtime directory, relative to it. */
export const RAG_PATHS = { dir: 'rag', server: 'rag/server.mjs' } as const;

/** The header the service takes the caller's identity from (not authenticated: see server.mjs). */
export const RAG_CALLER_HEADER = 'x-apertus-caller';

/** Where the service keeps its collection and audit log: outside releases, so both survive upgrades and rollbacks. */
export interface RagDataPaths {
  dataDir: string;
  auditLog: string;
  /** The audit log's signed checkpoints, written by the service given --checkpoint-key. */
  auditCheckpoints: string;
  collection: string;
}

export function ragDataPaths(root: string): RagDataPaths {
  const dataDir = posixPath.join(root, 'data', 'rag');
  const auditLog = posixPath.join(dataDir, 'audit.log');
  return {
    dataDir,
    auditLog,
    auditCheckpoints: auditCheckpointsPath(auditLog),
    collection: posixPath.join(dataDir, 'collection.json'),
  };
}

export interface RagCommandPaths {
  /** The shipped Node binary on the host. */
  node: string;
  /** rag/server.mjs on the host. */
  server: string;
  dataDir: string;
  auditLog: string;
  /** The host's key (target/host-key.ts): the service signs checkpoints of its audit log with it. */
  checkpointKey: string;
  /** The secret the gateway sends with its caller header (gateway/gateway-service.ts); absent: no gateway. */
  gatewayTokenFile?: string;
}

/** The service's argv, program first. It listens on loopback only. */
export function renderRagCommand(spec: RagServiceSpec, paths: RagCommandPaths): string[] {
  const optional = (flag: string, field: keyof RagServiceSpec, value: number | undefined, min: number) =>
    value === undefined ? [] : [flag, serviceInteger(spec, field, value, min, 10_000_000)];
  return [
    paths.node,
    paths.server,
    '--host',
    '127.0.0.1',
    '--port',
    serviceInteger(spec, 'port', spec.port, 1, 65535),
    '--data-dir',
    paths.dataDir,
    '--audit-log',
    paths.auditLog,
    '--checkpoint-key',
    paths.checkpointKey,
    '--runtime-url',
    spec.runtimeUrl,
    ...(spec.embeddingsUrl ? ['--embeddings-url', spec.embeddingsUrl] : []),
    '--embedding-model',
    spec.embeddingModel,
    '--dimension',
    serviceInteger(spec, 'dimension', spec.dimension, 1, 65536),
    '--chat-model',
    spec.chatModel,
    ...optional('--chunk-size', 'chunkSize', spec.chunkSize, 50),
    ...optional('--chunk-overlap', 'chunkOverlap', spec.chunkOverlap, 0),
    ...optional('--top-k', 'topK', spec.topK, 1),
    ...optional('--max-context-chars', 'maxContextChars', spec.maxContextChars, 100),
    ...(spec.qdrant
      ? ['--store', 'qdrant', '--qdrant-url', spec.qdrant.url, '--qdrant-collection', spec.qdrant.collection]
      : []),
    ...(spec.pgvector
      ? [
          '--store',
          'pgvector',
          '--pgvector-port',
          serviceInteger(spec, 'pgvector.port', spec.pgvector.port, 1, 65535),
          '--pgvector-collection',
          spec.pgvector.collection,
        ]
      : []),
    ...(spec.queryPrefix ? ['--query-prefix', spec.queryPrefix] : []),
    ...(spec.passagePrefix ? ['--passage-prefix', spec.passagePrefix] : []),
    ...(paths.gatewayTokenFile ? ['--gateway-token-file', paths.gatewayTokenFile] : []),
  ];
}

/** The RAG service's files for the runtime tree layer, at `rag/<file>`. */
export async function collectRagFiles(projectRoot: string): Promise<RuntimeTreeFile[]> {
  const files: RuntimeTreeFile[] = [];
  for (const name of RAG_FILES) {
    const source = path.join(projectRoot, 'templates', 'rag', name);
    const info = await stat(source).catch(() => null);
    if (info === null) {
      throw new ApertusError('runtime-missing-template', `${source} is missing`, {
        hint: 'The apertus installation is incomplete; reinstall it.',
        kind: 'operation',
      });
    }
    files.push({ path: `${RAG_PATHS.dir}/${name}`, source, mode: 0o644, size: info.size });
  }
  return files;
}

export interface CollectionLock {
  embeddingModel: string;
  dimension: number;
}

/** The embedding model and dimension the host's collection is locked to; null when there is no collection yet. */
export async function readRagCollectionLock(
  transport: Transport,
  dataDir: string,
  signal?: AbortSignal,
): Promise<CollectionLock | null> {
  const file = posixPath.join(dataDir, 'collection.json');
  const result = await transport.exec(
    `if [ -e ${shellQuote([file])} ]; then cat ${shellQuote([file])}; else exit 3; fi`,
    { reject: false, signal },
  );
  if (result.exitCode === 3) return null;
  if (result.exitCode !== 0) {
    throw new ApertusError(
      'rag-collection-unreadable',
      `Cannot read ${file} on ${transport.description}: ${result.stderr.trim() || `exit ${result.exitCode}`}.`,
      { kind: 'operation', hint: `Check the permissions of ${dataDir} on the host.` },
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(result.stdout);
  } catch (error) {
    throw new ApertusError(
      'rag-collection-unreadable',
      `${file} on ${transport.description} is not JSON: ${(error as Error).message}.`,
      {
        kind: 'operation',
        hint: `Move ${dataDir} aside and install again; the RAG documents must then be ingested again.`,
      },
    );
  }
  const lock = parsed as Partial<CollectionLock>;
  if (typeof lock.embeddingModel !== 'string' || typeof lock.dimension !== 'number') {
    throw new ApertusError(
      'rag-collection-unreadable',
      `${file} on ${transport.description} names no embeddingModel and dimension.`,
      { kind: 'operation', hint: `Move ${dataDir} aside and install again.` },
    );
  }
  return { embeddingModel: lock.embeddingModel, dimension: lock.dimension };
}

/**
 * Refuses an install whose embedding model or dimension differs from the one the host's
 * collection is locked to: the service would refuse to start on it. Returns the lock
 * found (null: a new collection will be created).
 */
export async function checkRagCollectionLock(
  transport: Transport,
  dataDir: string,
  wanted: CollectionLock,
  signal?: AbortSignal,
): Promise<CollectionLock | null> {
  const locked = await readRagCollectionLock(transport, dataDir, signal);
  if (locked && (locked.embeddingModel !== wanted.embeddingModel || locked.dimension !== wanted.dimension)) {
    throw new ApertusError(
      'rag-collection-locked',
      `The RAG collection in ${dataDir} on ${transport.description} is locked to embedding model "${locked.embeddingModel}" (dimension ${locked.dimension}); this bundle embeds with "${wanted.embeddingModel}" (dimension ${wanted.dimension}), whose vectors cannot be compared with the stored ones.`,
      {
        hint: `Re-index first: run the RAG service once with --reindex and the new model (it re-embeds every stored chunk), or move ${dataDir} aside to start an empty collection; then install again.`,
        details: { locked, wanted },
      },
    );
  }
  return locked;
}
