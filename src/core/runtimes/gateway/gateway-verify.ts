/**
 * Install's verification through the gateway, as a client on the network sees it: over
 * TLS with the certificate uploaded (pinned by its fingerprint), refused without a key, and
 * with a key install makes for itself (scopes chat, embeddings, rag): every model listed,
 * a streamed chat and embeddings, and the RAG canary through /rag/COLLECTION. The key is
 * taken out of the key file at the end, hash and all, whatever happened; its name stays in
 * the access log and the RAG audit log as the caller of those requests.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import { ApertusError } from '../../errors.js';
import { httpRequest, type PinnedTls } from '../../host/http-over-transport.js';
import { shellQuote } from '../../host/shell-quote.js';
import type { Transport } from '../../host/transport.js';
import type { VerifySpec } from '../../layout/types.js';
import type { HostLayout } from '../../target/layout.js';
import { type OpenAiEndpoint, requestVia, verifyModelServer } from '../openai-checks.js';
import { verifyServiceLog } from '../rag/audit-check.js';
import { runRagCanary } from '../rag/canary.js';
import { attempt, type ServiceCheck } from '../service-check.js';
import { newApiKey } from './api-key-file.js';
import { readKeyFile, writeKeyFile } from './api-key-store.js';
import { type GatewayDataPaths, gatewayDataPaths } from './gateway-service.js';
import type { GatewayServiceSpec } from './spec.js';

/** The secret shared by the gateway and the RAG service: 256 random bits, base64url. */
export function newGatewayToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Where the host reaches the gateway: its own address, or loopback when it binds every address. */
export function gatewayAddressFromHost(address: string): string {
  if (address === '0.0.0.0') return '127.0.0.1';
  if (address === '::') return '::1';
  return address;
}

export async function verifyThroughGateway(
  transport: Transport,
  service: GatewayServiceSpec,
  spec: VerifySpec,
  layout: HostLayout | undefined,
  signal?: AbortSignal,
): Promise<ServiceCheck[]> {
  if (layout === undefined) throw new Error('the gateway is verified with its install root');
  const data = gatewayDataPaths(layout.root);
  let tls: PinnedTls | undefined;
  try {
    tls = service.insecureHttp ? undefined : await installedCertificate(transport, data.tlsCert, signal);
  } catch (error) {
    return [
      {
        id: 'verify.models',
        service: service.name,
        status: 'fail',
        detail: (error as Error).message,
        ms: 0,
      },
    ];
  }
  const base: OpenAiEndpoint = {
    port: service.expose.port,
    host: gatewayAddressFromHost(service.expose.address),
    ...(tls ? { tls } : {}),
    headers: {},
  };
  const how = tls ? `TLS (certificate ${tls.fingerprint256.slice(0, 23)}…)` : 'plain HTTP';
  const key = await addVerifyKey(transport, data, signal);
  const checks: ServiceCheck[] = [];
  try {
    checks.push(
      await attempt('verify.models', service.name, async () => {
        const refused = await httpRequest(transport, {
          ...requestVia(base, '/v1/models'),
          timeoutMs: 30_000,
          ...(signal ? { signal } : {}),
        });
        const code = (() => {
          try {
            return (JSON.parse(refused.body) as { error?: { code?: unknown } }).error?.code;
          } catch {
            return undefined;
          }
        })();
        return refused.status === 401 && code === 'invalid_api_key'
          ? { status: 'ok', detail: `over ${how}: 401 invalid_api_key without a key` }
          : {
              status: 'fail',
              detail: `over ${how} without a key: HTTP ${refused.status} ${refused.body.slice(0, 120)}, expected 401 invalid_api_key`,
            };
      }),
    );
    const via: OpenAiEndpoint = { ...base, headers: { authorization: `Bearer ${key.key}` } };
    for (const upstream of service.upstreams) {
      checks.push(
        ...(await verifyModelServer(
          transport,
          {
            name: service.name,
            port: service.expose.port,
            modelId: upstream.model,
            embeddings: upstream.embeddings,
          },
          spec,
          signal,
          via,
        )),
      );
    }
    for (const rag of service.rags) {
      checks.push(
        await runRagCanary(transport, {
          port: { ...via, pathPrefix: `/rag/${rag.collection}` },
          service: service.name,
          ...(signal ? { signal } : {}),
        }),
      );
    }
  } finally {
    await removeVerifyKey(transport, data, key.name);
  }
  for (const check of checks)
    if (check.status === 'ok') check.detail = `through ${service.name} as ${key.name}: ${check.detail}`;
  return checks;
}

/** The gateway's access log verifies to its last signed checkpoint. */
export async function verifyAccessLog(
  transport: Transport,
  root: string,
  service: GatewayServiceSpec,
  signal?: AbortSignal,
): Promise<ServiceCheck> {
  const log = gatewayDataPaths(root).accessLog;
  const check = await verifyServiceLog(transport, root, service.name, log, signal);
  if (check.status === 'ok') return check;
  // The record of the last request is written once its answer has ended: give it a moment.
  await new Promise((resolve) => setTimeout(resolve, 500));
  return verifyServiceLog(transport, root, service.name, log, signal);
}

/** The SHA-256 fingerprint of the certificate install uploaded, which the gateway must present. */
async function installedCertificate(
  transport: Transport,
  file: string,
  signal?: AbortSignal,
): Promise<PinnedTls> {
  const read = await transport.exec(shellQuote(['cat', file]), { reject: false, signal });
  try {
    if (read.exitCode !== 0) throw new Error(read.stderr.trim() || `exit ${read.exitCode}`);
    return { fingerprint256: new X509Certificate(read.stdout).fingerprint256 };
  } catch (error) {
    throw new ApertusError(
      'gateway-tls-unreadable',
      `The gateway's certificate ${file} on ${transport.description} cannot be read: ${(error as Error).message}.`,
      { kind: 'operation', hint: 'Install again with --tls-cert and --tls-key.' },
    );
  }
}

async function addVerifyKey(
  transport: Transport,
  data: GatewayDataPaths,
  signal?: AbortSignal,
): Promise<{ name: string; key: string }> {
  const file = await readKeyFile(transport, data.keys, signal);
  const made = newApiKey();
  const name = `install-verify-${randomBytes(4).toString('hex')}`;
  const entry = {
    name,
    sha256: made.sha256,
    scopes: ['chat', 'embeddings', 'rag'],
    created: new Date().toISOString(),
  };
  await writeKeyFile(transport, data.keys, data.dir, { ...file, keys: [...file.keys, entry] });
  return { name, key: made.key };
}

/** Takes the key out, hash and all; not under the caller's signal, so an abort still removes it. */
async function removeVerifyKey(transport: Transport, data: GatewayDataPaths, name: string): Promise<void> {
  const file = await readKeyFile(transport, data.keys);
  await writeKeyFile(transport, data.keys, data.dir, {
    ...file,
    keys: file.keys.filter((k) => k.name !== name),
  });
}
