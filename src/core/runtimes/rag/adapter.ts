/**
 * The RAG service (templates/rag/server.mjs) on the runtime component's Node binary, in
 * front of the model servers it chats and embeds through; its collection is locked to the
 * embedding model, and every request lands in its audit log.
 */
import path from 'node:path/posix';
import type { z } from 'zod';
import { ApertusError } from '../../errors.js';
import { shellQuote } from '../../host/shell-quote.js';
import { portOfLoopbackUrl } from '../../spec/safe-values.js';
import type { HostLayout } from '../../target/layout.js';
import type { FieldIssue, RuntimeAdapter } from '../adapter.js';
import { loopbackUrlOf } from '../adapter.js';
import { gatewayDataPaths } from '../gateway/gateway-service.js';
import { modelListedCheck } from '../openai-checks.js';
import { runtimePaths } from '../runtime-files.js';
import { managedStopScript, type RuntimeCommandOptions, startRuntimeCommand } from '../service-manager.js';
import { verifyAuditLog } from './audit-check.js';
import { runRagCanary } from './canary.js';
import { checkRagCollectionLock, RAG_PATHS, ragDataPaths, renderRagCommand } from './rag-service.js';
import { type RagRecipeService, type RagServiceSpec, ragRecipeService, ragServiceSchema } from './spec.js';

/** The runtime the RAG service's Qdrant or pgvector store must be: a plain container of the bundle's image. */
const STORE_RUNTIME = 'container';

export const ragRuntime: RuntimeAdapter<
  RagServiceSpec,
  RagRecipeService,
  z.input<typeof ragRecipeService>
> = {
  runtime: 'rag',
  recipeSchema: ragRecipeService,
  checkRecipe(service, recipe) {
    const issues: FieldIssue[] = [];
    for (const field of ['chat', 'embeddings'] as const) {
      const wanted = service[field];
      if (wanted !== undefined && !recipe.modelServer(wanted)) {
        issues.push({
          path: [field],
          message: `no model service named "${wanted}" (model services: ${recipe.modelServerNames.join(', ') || 'none'})`,
        });
      }
    }
    for (const store of ['qdrant', 'pgvector'] as const) {
      const wanted = service[store]?.service;
      if (wanted !== undefined && recipe.runtimeOf(wanted) !== STORE_RUNTIME) {
        issues.push({
          path: [store, 'service'],
          message: `no container service named "${wanted}" to keep the vectors in`,
        });
      }
    }
    const embedder = service.embeddings ?? service.chat;
    if (recipe.modelServer(embedder)?.embeddings === false) {
      issues.push({
        path: [service.embeddings ? 'embeddings' : 'chat'],
        message: `service "${embedder}" does not serve embeddings: set "embeddings: true" on it`,
      });
    }
    return issues;
  },
  recipeModel: () => null,
  resolve(service, context) {
    const find = (name: string) => {
      const found = context.endpointOf(name);
      if (!found) {
        throw new ApertusError(
          'recipe-service-missing',
          `Service ${service.name} calls "${name}", which is not a model service.`,
          {
            hint: `Name a model service of ${context.recipeFile} in services[].chat and services[].embeddings.`,
          },
        );
      }
      return found;
    };
    const chat = find(service.chat);
    const embedder = find(service.embeddings ?? service.chat);
    const qdrantPort = service.qdrant ? context.portOf(service.qdrant.service) : undefined;
    const pgvectorPort = service.pgvector ? context.portOf(service.pgvector.service) : undefined;
    const dependsOn = [
      ...new Set([
        service.chat,
        service.embeddings ?? service.chat,
        ...(service.qdrant && qdrantPort !== undefined ? [service.qdrant.service] : []),
        ...(service.pgvector && pgvectorPort !== undefined ? [service.pgvector.service] : []),
      ]),
    ];
    return {
      name: service.name,
      runtime: 'rag',
      port: service.port,
      runtimeUrl: chat.url,
      ...(embedder.url !== chat.url ? { embeddingsUrl: embedder.url } : {}),
      embeddingModel: embedder.modelId,
      dimension: service.dimension,
      chatModel: chat.modelId,
      dependsOn,
      ...pickDefined(
        service,
        'chunkSize',
        'chunkOverlap',
        'topK',
        'maxContextChars',
        'queryPrefix',
        'passagePrefix',
      ),
      ...(service.qdrant && qdrantPort !== undefined
        ? { qdrant: { url: loopbackUrlOf(qdrantPort), collection: service.qdrant.collection } }
        : {}),
      ...(service.pgvector && pgvectorPort !== undefined
        ? { pgvector: { port: pgvectorPort, collection: service.pgvector.collection } }
        : {}),
    };
  },
  needsRuntimeComponent: true,

  bundleSchema: ragServiceSchema,
  checkBundle(service, bundle) {
    const issues: FieldIssue[] = [];
    (service.dependsOn ?? []).forEach((name, i) => {
      if (name === service.name || !bundle.serviceNames.includes(name)) {
        issues.push({
          path: ['dependsOn', i],
          message: `no other service named "${name}" (services: ${bundle.serviceNames.join(', ')})`,
        });
      }
    });
    const urls: Array<[FieldIssue['path'], string | undefined]> = [
      [['runtimeUrl'], service.runtimeUrl],
      [['embeddingsUrl'], service.embeddingsUrl],
      [['qdrant', 'url'], service.qdrant?.url],
    ];
    const ports: Array<[FieldIssue['path'], number | undefined]> = [
      ...urls.map(([field, url]): [FieldIssue['path'], number | undefined] => [
        field,
        url === undefined ? undefined : portOfLoopbackUrl(url),
      ]),
      [['pgvector', 'port'], service.pgvector?.port],
    ];
    for (const [field, port] of ports) {
      if (port === undefined) continue;
      const target = bundle.serviceOnPort(port);
      if (target === undefined || target === service.name) {
        issues.push({ path: field, message: `no other service of the bundle listens on port ${port}` });
      }
    }
    return issues;
  },
  dependsOn: (service) => service.dependsOn ?? [],
  modelId: (service) => service.chatModel,
  endpoint: () => null,
  // Its collection is named after the service: /rag/NAME/v1/... and the model rag:NAME.
  gatewayRoute: (service) => ({ kind: 'rag', collection: service.name, url: loopbackUrlOf(service.port) }),

  needsContainerEngine: false,
  // Refuses an install whose embedding model or dimension differs from the one the host's collection is locked to.
  async preflight(transport, layout, service, signal) {
    await checkRagCollectionLock(
      transport,
      ragDataPaths(layout.root).dataDir,
      { embeddingModel: service.embeddingModel, dimension: service.dimension },
      signal,
    );
  },
  async start(transport, service, context) {
    // A host with a gateway has its token: then only the gateway's caller header is believed.
    const token = gatewayDataPaths(context.layout.root).token;
    const behindGateway =
      (await transport.exec(`test -s ${shellQuote([token])}`, { reject: false })).exitCode === 0;
    await startRuntimeCommand(
      transport,
      service.name,
      ragReleaseCommand(service, context.releaseDir, context.layout, behindGateway ? token : undefined),
      context,
      ragRunOptions(service, context.layout, behindGateway ? token : undefined),
    );
  },
  stopScript: (service, layout) => managedStopScript(service.name, layout),
  healthPath: () => '/health',
  verify: async (transport, service, _spec, signal) => [
    await modelListedCheck(transport, service.name, service.port, service.chatModel, signal),
    await runRagCanary(transport, { port: service.port, service: service.name, signal }),
  ],
  verifyRecords: async (transport, root, service, signal) => [
    await verifyAuditLog(transport, root, service, signal),
  ],
  report: (service) => ({ modelId: service.chatModel }),
  summary: (service) => `over ${service.chatModel}`,
};

/**
 * How the service runs under systemd: after the services it calls, writing only its data
 * directory, and reading the gateway's token (started before the gateway, it must own it).
 */
export function ragRunOptions(
  service: RagServiceSpec,
  layout: HostLayout,
  gatewayTokenFile?: string,
): RuntimeCommandOptions {
  return {
    requires: service.dependsOn ?? [],
    writes: [ragDataPaths(layout.root).dataDir],
    ...(gatewayTokenFile === undefined ? {} : { reads: [path.dirname(gatewayTokenFile)] }),
  };
}

/** The service's argv in a release, program first; its data lives under the install root `root`. */
export function ragReleaseCommand(
  service: RagServiceSpec,
  releaseDir: string,
  layout: HostLayout,
  gatewayTokenFile?: string,
): string[] {
  const runtime = runtimePaths(releaseDir);
  const data = ragDataPaths(layout.root);
  return renderRagCommand(service, {
    node: runtime.node,
    server: path.join(runtime.dir, RAG_PATHS.server),
    dataDir: data.dataDir,
    auditLog: data.auditLog,
    checkpointKey: layout.hostSecretKey,
    ...(gatewayTokenFile ? { gatewayTokenFile } : {}),
  });
}

function pickDefined<T extends object, K extends keyof T>(value: T, ...keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const key of keys) if (value[key] !== undefined) out[key] = value[key];
  return out;
}
