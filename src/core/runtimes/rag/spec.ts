/**
 * The RAG service in a recipe and in a bundle: which model services it chats and embeds
 * through, turned at bundle time into the loopback URLs and model ids it is started with.
 */
import { z } from 'zod';
import {
  argument,
  collectionName,
  hostPort,
  LIMITS,
  loopbackUrl,
  modelId,
  resourceName,
} from '../../spec/safe-values.js';
import type { KindSchema } from '../adapter.js';

/** Our RAG service (templates/rag), in front of the model servers it embeds and chats through. */
export interface RagServiceSpec {
  name: string;
  runtime: 'rag';
  port: number;
  /** Base URL of the runtime it chats through, e.g. http://127.0.0.1:18080. */
  runtimeUrl: string;
  /** Base URL of the runtime serving embeddings, when not the chat runtime. */
  embeddingsUrl?: string;
  /** The id the runtime serves embeddings under; the collection is locked to it and `dimension`. */
  embeddingModel: string;
  dimension: number;
  chatModel: string;
  /** Services this one calls: started before it, stopped after it. */
  dependsOn?: string[];
  chunkSize?: number;
  chunkOverlap?: number;
  topK?: number;
  maxContextChars?: number;
  /** Text put before queries and passages before embedding (e5 models want 'query: ' and 'passage: '). */
  queryPrefix?: string;
  passagePrefix?: string;
  /** Vectors in a Qdrant server instead of the embedded store. */
  qdrant?: { url: string; collection: string };
  /**
   * Vectors in PostgreSQL with pgvector on this loopback port. The connection URL (it may
   * hold a password) is never part of the bundle: the service reads it on the host.
   */
  pgvector?: { port: number; collection: string };
}

export const ragRecipeService = z
  .object({
    name: resourceName,
    runtime: z
      .literal('rag')
      .describe('our RAG service: ingest, retrieve, answer with sources, audit every request'),
    port: hostPort,
    chat: resourceName.describe('the model service it answers through (its chat model)'),
    embeddings: resourceName
      .optional()
      .describe(
        'the model service it embeds through (default: the chat service, which must serve embeddings)',
      ),
    dimension: LIMITS.dimension.describe(
      "the embedding model's dimension; the collection on the host is locked to it",
    ),
    chunkSize: LIMITS.chunkSize.optional().describe('characters per chunk (default 800)'),
    chunkOverlap: LIMITS.chunkOverlap
      .optional()
      .describe('characters shared by neighbouring chunks (default 120)'),
    topK: LIMITS.topK.optional().describe('passages retrieved per question (default 4)'),
    maxContextChars: LIMITS.maxContextChars
      .optional()
      .describe('characters of retrieved passages sent to the model at most (default 4000)'),
    queryPrefix: argument.optional().describe('put before questions before embedding (e5 models: "query: ")'),
    passagePrefix: argument
      .optional()
      .describe('put before passages before embedding (e5 models: "passage: ")'),
    qdrant: z
      .object({
        service: resourceName.describe('the container service running Qdrant'),
        collection: collectionName.default('apertus').describe('the Qdrant collection'),
      })
      .strict()
      .optional()
      .describe('keep the vectors in Qdrant instead of the embedded store (for large collections)'),
    pgvector: z
      .object({
        service: resourceName.describe('the container service running PostgreSQL with pgvector'),
        collection: collectionName
          .default('apertus')
          .describe('the collection (its own tables in the database)'),
      })
      .strict()
      .optional()
      .describe(
        'keep the vectors in PostgreSQL with pgvector; the connection URL comes from the host (APERTUS_PGVECTOR_URL or <data dir>/pgvector.url), never from the bundle',
      ),
  })
  .strict()
  .refine((service) => !(service.qdrant && service.pgvector), {
    message: 'choose one store: qdrant or pgvector, not both',
    path: ['pgvector'],
  });

export type RagRecipeService = z.output<typeof ragRecipeService>;

export const ragServiceSchema = z.object({
  name: resourceName,
  runtime: z.literal('rag'),
  port: hostPort,
  runtimeUrl: loopbackUrl,
  embeddingsUrl: loopbackUrl.optional(),
  embeddingModel: modelId,
  dimension: LIMITS.dimension,
  chatModel: modelId,
  dependsOn: z.array(resourceName).optional(),
  chunkSize: LIMITS.chunkSize.optional(),
  chunkOverlap: LIMITS.chunkOverlap.optional(),
  topK: LIMITS.topK.optional(),
  maxContextChars: LIMITS.maxContextChars.optional(),
  queryPrefix: argument.optional(),
  passagePrefix: argument.optional(),
  qdrant: z.object({ url: loopbackUrl, collection: collectionName }).optional(),
  pgvector: z.object({ port: hostPort, collection: collectionName }).optional(),
}) satisfies KindSchema<RagServiceSpec>;
