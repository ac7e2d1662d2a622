/**
 * The gateway (templates/gateway/server.mjs): where its files travel in the bundle, where
 * its key file, TLS files and access log live on a host, and the command that starts it.
 *
 * Like the RAG service it needs nothing of npm: its modules go into the runtime component's
 * tree layer under `gateway/`, next to `rag/`, whose audit-log.mjs it imports for its access
 * log (the RAG files are always in that tree), and it runs on the shipped Node binary.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import posixPath from 'node:path/posix';
import { ApertusError } from '../../errors.js';
import type { RuntimeTreeFile } from '../runtime-files.js';
import { serviceInteger } from '../service-check.js';
import type { GatewayServiceSpec } from './spec.js';

/** The gateway's modules, in templates/gateway/ and under GATEWAY_PATHS.dir in the runtime directory. */
export const GATEWAY_FILES = ['server.mjs', 'api-keys.mjs', 'limits.mjs', 'metrics.mjs'] as const;

/** Paths inside the runtime directory, relative to it. */
export const GATEWAY_PATHS = { dir: 'gateway', server: 'gateway/server.mjs' } as const;

/**
 * Where the gateway keeps what is per host and must survive releases: outside releases,
 * never in a bundle. keys: the hashed API keys (`apertus keys api`); token: the secret
 * the RAG service checks the gateway's caller header with; tls: the certificate and key
 * the operator gives (0600).
 */
export interface GatewayDataPaths {
  dir: string;
  keys: string;
  token: string;
  accessLog: string;
  tlsCert: string;
  tlsKey: string;
}

export function gatewayDataPaths(root: string): GatewayDataPaths {
  const dir = posixPath.join(root, 'data', 'gateway');
  return {
    dir,
    keys: posixPath.join(dir, 'api-keys.json'),
    token: posixPath.join(dir, 'gateway.token'),
    accessLog: posixPath.join(dir, 'access.log'),
    tlsCert: posixPath.join(dir, 'tls', 'cert.pem'),
    tlsKey: posixPath.join(dir, 'tls', 'key.pem'),
  };
}

/** The gateway's files for the runtime tree layer, at `gateway/<file>`. */
export async function collectGatewayFiles(projectRoot: string): Promise<RuntimeTreeFile[]> {
  const files: RuntimeTreeFile[] = [];
  for (const name of GATEWAY_FILES) {
    const source = path.join(projectRoot, 'templates', 'gateway', name);
    const info = await stat(source).catch(() => null);
    if (info === null) {
      throw new ApertusError('runtime-missing-template', `${source} is missing`, {
        hint: 'The apertus installation is incomplete; reinstall it.',
        kind: 'operation',
      });
    }
    files.push({ path: `${GATEWAY_PATHS.dir}/${name}`, source, mode: 0o644, size: info.size });
  }
  return files;
}

export interface GatewayCommandPaths {
  /** The shipped Node binary on the host. */
  node: string;
  /** gateway/server.mjs on the host. */
  server: string;
  data: GatewayDataPaths;
  /** The host's key (target/host-key.ts): the gateway signs checkpoints of its access log with it. */
  checkpointKey: string;
}

/** ADDRESS:PORT as the gateway's --listen takes it (IPv6 in brackets). */
export function listenArgument(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** The gateway's argv, program first: TLS from the host's files unless the spec says plain HTTP. */
export function renderGatewayCommand(spec: GatewayServiceSpec, paths: GatewayCommandPaths): string[] {
  const optional = (flag: string, field: keyof GatewayServiceSpec, value: number | undefined, max: number) =>
    value === undefined ? [] : [flag, serviceInteger(spec, field, value, 1, max)];
  return [
    paths.node,
    paths.server,
    '--listen',
    listenArgument(
      spec.expose.address,
      Number(serviceInteger(spec, 'expose.port', spec.expose.port, 1, 65535)),
    ),
    '--metrics-port',
    serviceInteger(spec, 'port', spec.port, 1, 65535),
    '--keys',
    paths.data.keys,
    '--access-log',
    paths.data.accessLog,
    '--checkpoint-key',
    paths.checkpointKey,
    '--gateway-token-file',
    paths.data.token,
    ...(spec.insecureHttp
      ? ['--insecure-http']
      : ['--tls-cert', paths.data.tlsCert, '--tls-key', paths.data.tlsKey]),
    ...spec.upstreams.flatMap((u) => ['--upstream', `${u.model}=${u.url}`]),
    ...spec.rags.flatMap((r) => ['--rag', `${r.collection}=${r.url}`]),
    // A rate is a decimal number: its text is passed as zod checked it.
    ...(spec.rate === undefined ? [] : ['--rate', String(spec.rate)]),
    ...optional('--burst', 'burst', spec.burst, 1_000_000),
    ...optional('--max-body-bytes', 'maxBodyBytes', spec.maxBodyBytes, 1024 * 1024 * 1024),
  ];
}
