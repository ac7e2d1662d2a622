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
