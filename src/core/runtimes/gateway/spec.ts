/**
 * The gateway in a recipe and in a bundle: the address and port it faces the network on,
 * the loopback port of its health and metrics, and the services it routes to, turned at
 * bundle time into the model ids and loopback URLs it is started with.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import {
  anyPort,
  collectionName,
  count,
  hostPort,
  loopbackUrl,
  modelId,
  resourceName,
} from '../../spec/safe-values.js';
import type { KindSchema } from '../adapter.js';

/** An IPv4 or IPv6 address literal the gateway binds (0.0.0.0 or :: for every address). */
export const listenAddress = z
  .string()
  .refine((value) => isIP(value) !== 0, { message: 'an IPv4 or IPv6 address, e.g. 10.0.0.5 or 0.0.0.0' });

const expose = z
  .object({
    address: listenAddress
      .default('0.0.0.0')
      .describe(
        'the address it binds on the host (default 0.0.0.0; install --expose-address sets it per host)',
      ),
    port: anyPort.describe('the port clients connect to (HTTPS, or HTTP with install --insecure-http)'),
  })
  .strict();

const limits = {
  rate: z.number().min(0.001).max(1e6).optional().describe('requests per second per API key (default 5)'),
  burst: count(1, 1_000_000)
    .optional()
    .describe('requests a key may send at once beyond the rate (default 20)'),
  maxBodyBytes: count(1024, 1024 * 1024 * 1024)
    .optional()
    .describe('largest request body accepted (default 16 MiB)'),
};

/** The gateway (templates/gateway): TLS, API keys, limits, routes to the release's services. */
export interface GatewayServiceSpec {
  name: string;
  runtime: 'gateway';
  /** On 127.0.0.1: /health and /metrics (for the install's checks and a Prometheus scrape). */
  port: number;
  /** Where it faces the network. */
  expose: { address: string; port: number };
  /** Model servers it routes to by the body's `model`. */
  upstreams: Array<{ service: string; model: string; url: string; embeddings: boolean }>;
  /** RAG services it routes to by path (/rag/COLLECTION/v1/...) and by the model `rag:COLLECTION`. */
  rags: Array<{ service: string; collection: string; url: string }>;
  dependsOn: string[];
  rate?: number;
  burst?: number;
  maxBodyBytes?: number;
  /** Set per host by install --insecure-http: plain HTTP, keys in clear; `status` warns. */
  insecureHttp?: boolean;
}

export const gatewayRecipeService = z
  .object({
    name: resourceName,
    runtime: z
      .literal('gateway')
      .describe('our gateway: the one service on the network, with TLS and API keys, in front of the others'),
    port: hostPort.describe('its health and metrics port on 127.0.0.1'),
    expose: expose.describe('where it faces the network'),
    routes: z
      .array(resourceName)
      .min(1)
      .optional()
      .describe('the model and RAG services it serves (default: all of them)'),
    ...limits,
  })
  .strict();

export type GatewayRecipeService = z.output<typeof gatewayRecipeService>;

export const gatewayServiceSchema = z.object({
  name: resourceName,
  runtime: z.literal('gateway'),
  port: hostPort,
  expose: z.object({ address: listenAddress, port: anyPort }),
  upstreams: z.array(
    z.object({ service: resourceName, model: modelId, url: loopbackUrl, embeddings: z.boolean() }),
  ),
  rags: z.array(z.object({ service: resourceName, collection: collectionName, url: loopbackUrl })),
  dependsOn: z.array(resourceName),
  ...limits,
  insecureHttp: z.boolean().optional(),
}) satisfies KindSchema<GatewayServiceSpec>;
