/**
 * `apertus keys api create|list|revoke`: the gateway's API keys on a host. The host keeps
 * only each key's SHA-256 in <root>/data/gateway/api-keys.json (0600, written whole and
 * renamed into place: target/safe-write.ts); the gateway re-reads it on change, so a
 * revocation takes effect on the next request. A new key is returned once, to be printed;
 * it never reaches the host, a file or argv. Names are never reused, revoked ones
 * included: a name in an audit record must mean one key. A create or a revoke is recorded
 * in the host's signed audit log (API-KEY-CREATE, API-KEY-REVOKE, with a report), like a
 * trust change.
 */
import { ApertusError } from '../errors.js';
import type { RunOptions } from '../progress.js';
import { type ApiKeyFile, newApiKey } from '../runtimes/gateway/api-key-file.js';
import { readKeyFile, writeKeyFile } from '../runtimes/gateway/api-key-store.js';
import { gatewayDataPaths } from '../runtimes/gateway/gateway-service.js';
import type { InstallTarget } from '../target/connect.js';
import { DEFAULT_HOST_ROOT, parseHostRoot } from '../target/layout.js';
import { type HostSession, withHostSession } from '../target/session.js';

export interface ApiKeyOptions extends RunOptions {
  target: InstallTarget;
  root?: string | undefined;
}

export interface ApiKeyListing {
  name: string;
  scopes: string[];
  created: string;
  revoked: string | null;
  /** The first 12 hex digits of the key's SHA-256: tells keys apart, reveals nothing. */
  fingerprint: string;
}

/** The host audit record and report of a change. */
export interface ApiKeyRecord {
  report: string;
  record: { seq: number };
}

export interface CreatedApiKey extends ApiKeyListing, ApiKeyRecord {
  host: string;
  /** The key itself: shown once, stored nowhere. */
  key: string;
  file: string;
}

export interface RevokedApiKey extends ApiKeyListing {
  host: string;
  /** false when the key was already revoked (then nothing is recorded). */
  changed: boolean;
  report: string | null;
  record: { seq: number } | null;
}

function session(options: ApiKeyOptions, command: string, lock: 'existing' | false) {
  return {
    target: options.target,
    root: parseHostRoot(options.root ?? DEFAULT_HOST_ROOT),
    command,
    lock,
    probe: { system: false },
    signal: options.signal,
    onProgress: options.onProgress,
  };
}

function listing(entry: ApiKeyFile['keys'][number]): ApiKeyListing {
  return {
    name: entry.name,
    scopes: entry.scopes,
    created: entry.created,
    revoked: entry.revoked ?? null,
    fingerprint: entry.sha256.slice(0, 12),
  };
}

export async function createApiKey(
  options: ApiKeyOptions & { name: string; scopes: string[] },
): Promise<CreatedApiKey> {
  return withHostSession(session(options, `keys api create ${options.name}`, 'existing'), async (host) => {
    const paths = gatewayDataPaths(host.layout.root);
    const file = await readKeyFile(host.transport, paths.keys, host.signal);
    const clash = file.keys.find((k) => k.name === options.name);
    if (clash !== undefined) {
      throw new ApertusError(
        'api-key-exists',
        `${host.transport.description} already has ${clash.revoked ? 'a revoked' : 'a'} key named "${options.name}".`,
        {
          hint: 'Names are never reused, so each name in the audit logs means one key: choose another --name.',
        },
      );
    }
    const made = newApiKey();
    const entry = {
      name: options.name,
      sha256: made.sha256,
      scopes: options.scopes,
      created: new Date().toISOString(),
    };
    await writeKeyFile(host.transport, paths.keys, paths.dir, { ...file, keys: [...file.keys, entry] });
    const recorded = await record(host, 'create', entry);
    return {
      host: host.transport.description,
      key: made.key,
      file: paths.keys,
      ...listing(entry),
      ...recorded,
    };
  });
}

export async function listApiKeys(
  options: ApiKeyOptions,
): Promise<{ host: string; file: string; keys: ApiKeyListing[] }> {
  return withHostSession(session(options, 'keys api list', false), async (host) => {
    const paths = gatewayDataPaths(host.layout.root);
    const file = await readKeyFile(host.transport, paths.keys, host.signal);
    return { host: host.transport.description, file: paths.keys, keys: file.keys.map(listing) };
  });
}

export async function revokeApiKey(options: ApiKeyOptions & { name: string }): Promise<RevokedApiKey> {
  return withHostSession(session(options, `keys api revoke ${options.name}`, 'existing'), async (host) => {
    const paths = gatewayDataPaths(host.layout.root);
    const file = await readKeyFile(host.transport, paths.keys, host.signal);
    const entry = file.keys.find((k) => k.name === options.name);
    if (entry === undefined) {
      throw new ApertusError(
        'api-key-not-found',
        `${host.transport.description} has no key named "${options.name}".`,
        {
          hint: 'See the names with `apertus keys api list` and the same --host or --local.',
        },
      );
    }
    if (entry.revoked !== undefined)
      return {
        host: host.transport.description,
        changed: false,
        ...listing(entry),
        report: null,
        record: null,
      };
    const revoked = { ...entry, revoked: new Date().toISOString() };
    await writeKeyFile(host.transport, paths.keys, paths.dir, {
      ...file,
      keys: file.keys.map((k) => (k === entry ? revoked : k)),
    });
    const recorded = await record(host, 'revoke', revoked);
    return { host: host.transport.description, changed: true, ...listing(revoked), ...recorded };
  });
}

async function record(
  host: HostSession,
  action: 'create' | 'revoke',
  entry: ApiKeyFile['keys'][number],
): Promise<ApiKeyRecord> {
  const recorded = await host.record({
    kind: 'api-key',
    method: action === 'create' ? 'API-KEY-CREATE' : 'API-KEY-REVOKE',
    endpoint: entry.name,
    ok: true,
    subjectSha256: entry.sha256,
    current: host.probe.root.current,
    state: () => host.state,
    report: ({ path, seq }) => ({ ok: true, path, record: { seq }, action, ...listing(entry) }),
  });
  return { report: recorded.reportPath, record: { seq: recorded.record.seq } };
}
