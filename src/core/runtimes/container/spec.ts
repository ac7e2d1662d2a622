/**
 * The container service in a recipe and in a bundle: any image component the bundle
 * carries (Qdrant, say), run with podman or docker.
 */
import { z } from 'zod';
import {
  anyPort,
  argument,
  bind,
  containerPath,
  envName,
  hostPort,
  httpPath,
  modelId,
  resourceName,
} from '../../spec/safe-values.js';
import type { KindSchema } from '../adapter.js';
import { type ServiceImage, serviceImageSchema } from './service-image.js';

/** Any image component run as a service (Qdrant, say): not a model server. */
export interface ContainerServiceSpec {
  name: string;
  runtime: 'container';
  image: ServiceImage;
  port: number;
  containerPort: number;
  bind: '127.0.0.1' | '0.0.0.0';
  args: string[];
  env: Record<string, string>;
  /** A component mounted read-only at /models/<component>. */
  modelComponent?: string;
  /** A path inside the container backed by a host directory that outlives releases. */
  dataDir?: string;
  healthPath: string;
  /** 'tcp': the service speaks no HTTP (PostgreSQL, say); an accepted connection is its health. */
  health?: 'tcp';
  /** The image serves the OpenAI API under this model id: verified like a model server. */
  openai?: { modelId: string; embeddings: boolean };
}

const componentName = resourceName.describe('the name of a component of this recipe');

export const containerRecipeService = z
  .object({
    name: resourceName,
    runtime: z.literal('container').describe('any image component, run with podman or docker'),
    image: componentName.describe('the image component to run'),
    port: hostPort.describe('the port on the host'),
    containerPort: anyPort.describe('the port the image listens on inside'),
    bind: bind
      .default('127.0.0.1')
      .describe('where the host port listens: loopback (default) or every interface'),
    args: z.array(argument).default([]).describe("arguments after the image's entrypoint"),
    env: z.record(envName, argument).default({}),
    model: componentName.optional().describe('a component mounted read-only at /models/<component>'),
    dataDir: containerPath
      .optional()
      .describe(
        'a path inside the container backed by a writable directory on the host that outlives releases',
      ),
    healthPath: httpPath.default('/').describe('HTTP path that answers 200 once the service is up'),
    health: z
      .enum(['http', 'tcp'])
      .default('http')
      .describe(
        'http: healthPath answers 200 once it is up; tcp: it speaks no HTTP (a database), and a connection it accepts on its port is its health',
      ),
    openai: z
      .object({
        modelId: modelId.describe('the model id the image serves in /v1/models'),
        embeddings: z.boolean().default(false).describe('it also serves /v1/embeddings'),
      })
      .strict()
      .optional()
      .describe(
        'the image serves the OpenAI API: install verifies it like a model server (model listed, chat, embeddings)',
      ),
  })
  .strict();

export type ContainerRecipeService = z.output<typeof containerRecipeService>;

export const containerServiceSchema = z.object({
  name: resourceName,
  runtime: z.literal('container'),
  image: serviceImageSchema,
  port: hostPort,
  containerPort: anyPort,
  bind,
  args: z.array(argument),
  env: z.record(envName, argument),
  modelComponent: resourceName.optional(),
  dataDir: containerPath.optional(),
  healthPath: httpPath,
  health: z.literal('tcp').optional(),
  openai: z.object({ modelId, embeddings: z.boolean() }).optional(),
}) satisfies KindSchema<ContainerServiceSpec>;
