/**
 * The gateway (templates/gateway/server.mjs) on the runtime component's Node binary: the one
 * service that faces the network, with TLS from the operator's certificate (or plain HTTP
 * only when install is told --insecure-http), API keys, limits, and routes to the model and
 * RAG services of the release, which stay on 127.0.0.1 behind it.
 */
import path from 'node:path/posix';
import type { z } from 'zod';
import { ApertusError } from '../../errors.js';
import { shellQuote } from '../../host/shell-quote.js';
import { portOfLoopbackUrl } from '../../spec/safe-values.js';
import type { HostLayout } from '../../target/layout.js';
import { writeFileScript } from '../../target/safe-write.js';
import type { FieldIssue, RuntimeAdapter } from '../adapter.js';
import { runtimePaths } from '../runtime-files.js';
import { managedStopScript, type RuntimeCommandOptions, startRuntimeCommand } from '../service-manager.js';
import { GATEWAY_PATHS, gatewayDataPaths, listenArgument, renderGatewayCommand } from './gateway-service.js';
import { newGatewayToken, verifyAccessLog, verifyThroughGateway } from './gateway-verify.js';
import {
  type GatewayRecipeService,
  type GatewayServiceSpec,
  gatewayRecipeService,
  gatewayServiceSchema,
} from './spec.js';

/** The model ids the gateway's --upstream accepts (templates/gateway/server.mjs MODEL_ID). */
const GATEWAY_MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$/;

export const gatewayRuntime: RuntimeAdapter<
  GatewayServiceSpec,
  GatewayRecipeService,
  z.input<typeof gatewayRecipeService>
> = {
  runtime: 'gateway',
  recipeSchema: gatewayRecipeService,
  checkRecipe(service, recipe) {
    const issues: FieldIssue[] = [];
    (service.routes ?? []).forEach((name, i) => {
      if (name === service.name || recipe.runtimeOf(name) === undefined)
        issues.push({ path: ['routes', i], message: `no other service named "${name}"` });
    });
    if (service.expose.port === service.port)
      issues.push({
        path: ['expose', 'port'],
        message: 'the exposed port must differ from the metrics port',
      });
    return issues;
  },
  recipeModel: () => null,
  resolve(service, context) {
    const explicit = service.routes !== undefined;
    const names = service.routes ?? context.serviceNames.filter((name) => name !== service.name);
    const upstreams: GatewayServiceSpec['upstreams'] = [];
    const rags: GatewayServiceSpec['rags'] = [];
    for (const name of names) {
      const route = context.routeOf(name);
      if (route === null || route === undefined) {
        // Without a list, services the gateway cannot route to (a vector store) are left out.
        if (!explicit) continue;
        throw new ApertusError(
          'recipe-service-missing',
          `Gateway ${service.name} routes to "${name}", which serves neither a model nor RAG.`,
          { hint: `Name model and RAG services in services[].routes of ${context.recipeFile}.` },
        );
      }
      if (route.kind === 'model') {
        // One id is one route; a second service of the same id is reached only on loopback.
        if (!upstreams.some((u) => u.model === route.model))
          upstreams.push({ service: name, model: route.model, url: route.url, embeddings: route.embeddings });
      } else rags.push({ service: name, collection: route.collection, url: route.url });
    }
    if (upstreams.length + rags.length === 0) {
      throw new ApertusError('recipe-service-missing', `Gateway ${service.name} has nothing to route to.`, {
        hint: `Add a model or RAG service to ${context.recipeFile}, or remove the gateway.`,
      });
    }
    return {
      name: service.name,
      runtime: 'gateway',
      port: service.port,
      expose: service.expose,
      upstreams,
      rags,
      dependsOn: [...new Set([...upstreams, ...rags].map((r) => r.service))],
      ...(service.rate === undefined ? {} : { rate: service.rate }),
      ...(service.burst === undefined ? {} : { burst: service.burst }),
      ...(service.maxBodyBytes === undefined ? {} : { maxBodyBytes: service.maxBodyBytes }),
    };
  },
  needsRuntimeComponent: true,

  bundleSchema: gatewayServiceSchema,
  checkBundle(service, bundle) {
    const issues: FieldIssue[] = [];
    service.dependsOn.forEach((name, i) => {
      if (name === service.name || !bundle.serviceNames.includes(name))
        issues.push({ path: ['dependsOn', i], message: `no other service named "${name}"` });
    });
    const routes = [
      ...service.upstreams.map((u, i) => [['upstreams', i, 'url'], u.url] as const),
      ...service.rags.map((r, i) => [['rags', i, 'url'], r.url] as const),
    ];
    for (const [field, url] of routes) {
      const target = bundle.serviceOnPort(portOfLoopbackUrl(url));
      if (target === undefined || target === service.name)
        issues.push({ path: [...field], message: `no other service of the bundle listens on ${url}` });
    }
    service.upstreams.forEach((u, i) => {
      if (!GATEWAY_MODEL_ID.test(u.model))
        issues.push({
          path: ['upstreams', i, 'model'],
          message: `the gateway routes model ids of letters, digits and ._:/@+- only, not "${u.model}"`,
        });
    });
    const other = bundle.serviceOnPort(service.expose.port);
    if (other !== undefined || service.expose.port === service.port)
      issues.push({
        path: ['expose', 'port'],
        message: `port ${service.expose.port} is already used by service "${other ?? service.name}"`,
      });
    return issues;
  },
  dependsOn: (service) => service.dependsOn,
  modelId: () => null,
  endpoint: () => null,
  gatewayRoute: () => null,

  needsContainerEngine: false,
  planLaunch(service, host) {
    const exposure = host.exposure;
    if (exposure === undefined) return service;
    return {
      ...service,
      expose: { address: exposure.address ?? service.expose.address, port: service.expose.port },
      ...(exposure.insecureHttp ? { insecureHttp: true } : {}),
    };
  },
  // Serving HTTPS needs the operator's certificate and key: given now, or on the host from before.
  async preflight(transport, layout, service, signal, provision) {
    if (service.insecureHttp || provision?.tls !== undefined) return;
    const data = gatewayDataPaths(layout.root);
    const found = await transport.exec(
      `test -s ${shellQuote([data.tlsCert])} && test -s ${shellQuote([data.tlsKey])}`,
      { reject: false, signal },
    );
    if (found.exitCode !== 0) {
      throw new ApertusError(
        'gateway-tls-missing',
        `Gateway ${service.name} serves HTTPS, and ${transport.description} has no certificate and key for it (${path.dirname(data.tlsCert)}).`,
        {
          hint: "Pass --tls-cert FILE --tls-key FILE (your PKI's, or made with `apertus tls ca` and `apertus tls cert`); --insecure-http serves plain HTTP instead (labs only; keys cross the network in clear).",
        },
      );
    }
  },
  async provision(transport, layout, _service, provision, signal) {
    const data = gatewayDataPaths(layout.root);
    const tlsDir = path.dirname(data.tlsCert);
    const lines = [
      `mkdir -p ${shellQuote([tlsDir])} && chmod 0700 ${shellQuote([data.dir, tlsDir])}`,
      // The secret the RAG service trusts the gateway's caller header with; kept across installs.
      `if [ ! -s ${shellQuote([data.token])} ]; then\n${writeFileScript(data.token, `${newGatewayToken()}\n`, '0600')}\nfi`,
      ...(provision.tls
        ? [
            writeFileScript(data.tlsCert, provision.tls.cert, '0600'),
            writeFileScript(data.tlsKey, provision.tls.key, '0600'),
          ]
        : []),
    ];
    await transport.exec(lines.join('\n'), { signal });
  },
  ports: (service) => [service.port, service.expose.port],
  start: (transport, service, context) =>
    startRuntimeCommand(
      transport,
      service.name,
      gatewayReleaseCommand(service, context.releaseDir, context.layout),
      context,
      gatewayRunOptions(context.layout),
    ),
  stopScript: (service, layout) => managedStopScript(service.name, layout),
  healthPath: () => '/health',
  verify: (transport, service, spec, signal, layout) =>
    verifyThroughGateway(transport, service, spec, layout, signal),
  verifyRecords: async (transport, root, service, signal) => [
    await verifyAccessLog(transport, root, service, signal),
  ],
  warnings: (service) =>
    service.insecureHttp
      ? [
          `gateway ${service.name} serves plain HTTP on ${listenArgument(service.expose.address, service.expose.port)} (--insecure-http): API keys and answers cross the network in clear; install again with --tls-cert and --tls-key`,
        ]
      : [],
  report: (service) => ({
    modelId: [
      ...service.upstreams.map((u) => u.model),
      ...service.rags.map((r) => `rag:${r.collection}`),
    ].join(','),
  }),
  summary: (service) =>
    `${service.insecureHttp ? 'http' : 'https'}://${listenArgument(service.expose.address, service.expose.port)} in front of ${service.dependsOn.join(', ')}`,
};

/** The gateway's argv in a release, program first; its keys, TLS files and access log live under the install root. */
/** Under systemd it writes its keys, token, TLS files and access log as the service user. */
export function gatewayRunOptions(layout: HostLayout): RuntimeCommandOptions {
  return { writes: [gatewayDataPaths(layout.root).dir] };
}

export function gatewayReleaseCommand(
  service: GatewayServiceSpec,
  releaseDir: string,
  layout: HostLayout,
): string[] {
  const runtime = runtimePaths(releaseDir);
  return renderGatewayCommand(service, {
    node: runtime.node,
    server: path.join(runtime.dir, GATEWAY_PATHS.server),
    data: gatewayDataPaths(layout.root),
    checkpointKey: layout.hostSecretKey,
  });
}
