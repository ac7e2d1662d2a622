/**
 * `apertus trust add|remove|list`: the signing keys a host trusts (target/trust-store.ts).
 * Adding and removing run in a host session and are recorded like installs (TRUST-ADD,
 * TRUST-REMOVE, with a report). Rotation: add the new key, install a bundle it signed,
 * remove the old key. The last key cannot be removed: a host that trusts no key would
 * take the next install's --trust-key from whoever runs it.
 */
import { ApertusError } from '../errors.js';
import type { RunOptions } from '../progress.js';
import { type PublicKey, readPublicKey } from '../sign/keys.js';
import type { InstallTarget } from '../target/connect.js';
import { DEFAULT_HOST_ROOT, parseHostRoot } from '../target/layout.js';
import { type HostSession, sha256Hex, withHostSession } from '../target/session.js';
import { addTrustedKeyScript, removeTrustedKeyScript, trustedKeys } from '../target/trust-store.js';

export interface TrustOptions extends RunOptions {
  target: InstallTarget;
  root?: string | undefined;
}

export interface TrustList {
  host: string;
  root: string;
  /** 'unsigned': the host installs unsigned bundles (its first install had --allow-unsigned). */
  mode: 'keys' | 'unsigned' | 'none';
  keys: Array<{ keyId: string; path: string }>;
}

/** The result of an add or remove; `changed` false when the key was already (or never) trusted. */
export interface TrustChange {
  ok: true;
  host: string;
  action: 'add' | 'remove';
  keyId: string;
  changed: boolean;
  /** The keys trusted afterwards. */
  keys: string[];
  /** The report and audit record, when the host changed. */
  report: string | null;
  record: { seq: number } | null;
}

export async function listTrust(options: TrustOptions): Promise<TrustList> {
  return withHostSession(
    { ...session(options, 'trust list'), lock: false },
    async ({ transport, layout, probe, state }) => {
      const keys = trustedKeys(probe, layout, transport.description);
      return {
        host: transport.description,
        root: layout.root,
        mode: keys.length > 0 ? 'keys' : state.trust?.mode === 'unsigned' ? 'unsigned' : 'none',
        keys: keys.map((k) => ({ keyId: k.keyId, path: k.path })),
      };
    },
  );
}

export async function addTrust(options: TrustOptions & { keyPath: string }): Promise<TrustChange> {
  const key = await readPublicKey(options.keyPath);
  return withHostSession({ ...session(options, `trust add ${key.keyId}`), lock: 'create' }, async (host) => {
    const keys = trustedKeys(host.probe, host.layout, host.transport.description).map((k) => k.keyId);
    if (keys.includes(key.keyId)) return unchanged(host, 'add', key.keyId, keys);
    await host.transport.exec(addTrustedKeyScript(host.layout, key));
    return record(host, 'add', key, [...keys, key.keyId].sort());
  });
}

/** `key` is a key id (as `trust list` prints it) or a .pub file. */
export async function removeTrust(options: TrustOptions & { key: string }): Promise<TrustChange> {
  const keyId = /^[0-9A-F]{16}$/.test(options.key) ? options.key : (await readPublicKey(options.key)).keyId;
  return withHostSession({ ...session(options, `trust remove ${keyId}`), lock: 'existing' }, async (host) => {
    const trusted = trustedKeys(host.probe, host.layout, host.transport.description);
    const keys = trusted.map((k) => k.keyId);
    const found = trusted.find((k) => k.keyId === keyId);
    if (found === undefined) return unchanged(host, 'remove', keyId, keys);
    if (keys.length === 1) {
      throw new ApertusError(
        'trust-last-key',
        `${keyId} is the only key ${host.transport.description} trusts; removing it would leave the host to trust whatever the next install names.`,
        {
          hint: 'Add the key that replaces it first (apertus trust add NEW.pub), install a bundle it signed, then remove this one.',
        },
      );
    }
    await host.transport.exec(removeTrustedKeyScript(host.layout, keyId));
    return record(
      host,
      'remove',
      found.key,
      keys.filter((k) => k !== keyId),
    );
  });
}

function session(options: TrustOptions, command: string) {
  return {
    target: options.target,
    root: parseHostRoot(options.root ?? DEFAULT_HOST_ROOT),
    command,
    probe: { system: false },
    signal: options.signal,
    onProgress: options.onProgress,
  };
}

function unchanged(host: HostSession, action: 'add' | 'remove', keyId: string, keys: string[]): TrustChange {
  return {
    ok: true,
    host: host.transport.description,
    action,
    keyId,
    changed: false,
    keys,
    report: null,
    record: null,
  };
}

async function record(
  host: HostSession,
  action: 'add' | 'remove',
  key: PublicKey,
  keys: string[],
): Promise<TrustChange> {
  const at = new Date().toISOString();
  const recorded = await host.record({
    kind: 'trust',
    method: action === 'add' ? 'TRUST-ADD' : 'TRUST-REMOVE',
    endpoint: key.keyId,
    ok: true,
    subjectSha256: sha256Hex(key.key),
    current: host.probe.root.current,
    state: () => ({
      ...host.state,
      trust:
        keys.length > 0
          ? { mode: 'keys', since: host.state.trust?.mode === 'keys' ? host.state.trust.since : at }
          : host.state.trust,
    }),
    report: ({ path, seq }) => ({
      ok: true,
      path,
      record: { seq },
      action,
      keyId: key.keyId,
      at,
      trusted: keys,
    }),
  });
  return {
    ok: true,
    host: host.transport.description,
    action,
    keyId: key.keyId,
    changed: true,
    keys,
    report: recorded.reportPath,
    record: { seq: recorded.record.seq },
  };
}
