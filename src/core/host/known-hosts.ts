import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { ApertusError } from '../errors.js';

/**
 * OpenSSH known_hosts, read and appended the way `ssh` does, so the file an admin already
 * trusts is the one apertus trusts: plain and `[host]:port` names, comma lists, `*`/`?`
 * wildcards, `!` negation, hashed `|1|salt|hmac` names, `@revoked` markers.
 * `@cert-authority` lines are skipped: apertus does not accept host certificates.
 */

/** A public key as SSH names it: `ssh-ed25519` and the base64 of its wire-format blob. */
export interface PublicKey {
  type: string;
  base64: string;
}

export interface KnownHostsEntry {
  /** 1-based line in the file, for error messages that point at it. */
  line: number;
  marker: 'revoked' | 'cert-authority' | undefined;
  /** The host field as written: a comma list of patterns, or one `|1|salt|hmac` hash. */
  hosts: string;
  key: PublicKey;
}

export type HostKeyStatus = 'match' | 'unknown' | 'changed' | 'revoked';

export interface HostKeyCheck {
  status: HostKeyStatus;
  /** The entry that decided 'match', 'changed' or 'revoked'. */
  entry?: KnownHostsEntry;
  /** Key types known_hosts holds for this host (not revoked); empty when unknown. */
  knownTypes: string[];
}

export function defaultKnownHostsFile(): string {
  return join(homedir(), '.ssh', 'known_hosts');
}

/** The name ssh looks up: `host` on port 22, `[host]:port` elsewhere; lower case. */
export function knownHostsName(host: string, port: number): string {
  const name = host.toLowerCase();
  return port === 22 ? name : `[${name}]:${port}`;
}

/** Parse known_hosts text. Lines ssh itself would skip (malformed, SSH1 keys) are skipped. */
export function parseKnownHosts(text: string): KnownHostsEntry[] {
  const entries: KnownHostsEntry[] = [];
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const trimmed = (lines[index] ?? '').trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const fields = trimmed.split(/\s+/);
    let marker: KnownHostsEntry['marker'];
    if (fields[0]?.startsWith('@')) {
      const name = fields.shift();
      if (name === '@revoked') marker = 'revoked';
      else if (name === '@cert-authority') marker = 'cert-authority';
      else continue;
    }
    const [hosts, type, base64] = fields;
    if (hosts === undefined || type === undefined || base64 === undefined) continue;
    if (!/^[a-z0-9][a-z0-9@.-]*$/i.test(type) || /^\d+$/.test(type)) continue;
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) continue;
    entries.push({ line: index + 1, marker, hosts, key: { type, base64 } });
  }
  return entries;
}

/** Entries of `file`; none when it does not exist yet (a fresh account has no known_hosts). */
export async function readKnownHosts(file: string): Promise<KnownHostsEntry[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new ApertusError('known-hosts-unreadable', `Cannot read known_hosts file ${file}.`, {
      kind: 'operation',
      hint: 'Check its permissions, or pass another file with --known-hosts FILE.',
      cause: error,
    });
  }
  return parseKnownHosts(text);
}

/** Whether a host-field of known_hosts names `host:port`. */
export function hostFieldMatches(hosts: string, host: string, port: number): boolean {
  const name = knownHostsName(host, port);
  if (hosts.startsWith('|1|')) return hashedNameMatches(hosts, name);
  let matched = false;
  for (const rawPattern of hosts.split(',')) {
    const negated = rawPattern.startsWith('!');
    const pattern = (negated ? rawPattern.slice(1) : rawPattern).toLowerCase();
    if (!globMatches(pattern, name)) continue;
    // A matching negation vetoes the whole line, as in OpenSSH's match_hostname.
    if (negated) return false;
    matched = true;
  }
  return matched;
}

/**
 * Decide what the presented key means for `host:port`. Stricter than `ssh` in one case: when
 * known_hosts holds keys for the host but none of the presented type, that is 'changed', not
 * new. ssh-algorithms.ts offers the known types first, so a host that still has its old key
 * presents it; one that does not has lost the key known_hosts vouches for.
 */
export function checkHostKey(
  entries: readonly KnownHostsEntry[],
  host: string,
  port: number,
  presented: PublicKey,
): HostKeyCheck {
  const presentedBlob = Buffer.from(presented.base64, 'base64');
  const forHost = entries.filter(
    (entry) => entry.marker !== 'cert-authority' && hostFieldMatches(entry.hosts, host, port),
  );
  const sameKey = (entry: KnownHostsEntry) =>
    entry.key.type === presented.type && Buffer.from(entry.key.base64, 'base64').equals(presentedBlob);

  const trusted = forHost.filter((entry) => entry.marker === undefined);
  const knownTypes = typesOf(trusted);
  const revoked = forHost.find((entry) => entry.marker === 'revoked' && sameKey(entry));
  if (revoked) return { status: 'revoked', entry: revoked, knownTypes };
  const match = trusted.find(sameKey);
  if (match) return { status: 'match', entry: match, knownTypes };
  const other = trusted.find((entry) => entry.key.type === presented.type) ?? trusted[0];
  if (other) return { status: 'changed', entry: other, knownTypes };
  return { status: 'unknown', knownTypes };
}

/** Key types known_hosts trusts for `host:port`, in file order. */
export function knownKeyTypes(entries: readonly KnownHostsEntry[], host: string, port: number): string[] {
  return typesOf(
    entries.filter((entry) => entry.marker === undefined && hostFieldMatches(entry.hosts, host, port)),
  );
}

function typesOf(entries: readonly KnownHostsEntry[]): string[] {
  return [...new Set(entries.map((entry) => entry.key.type))];
}

export interface AppendKnownHostOptions {
  /** Write the name hashed (`|1|salt|hmac`), as `HashKnownHosts yes` does. Default false. */
  hash?: boolean;
}

/** One known_hosts line for `host:port` and `key`, without the newline. */
export function formatKnownHostsLine(
  host: string,
  port: number,
  key: PublicKey,
  options: AppendKnownHostOptions = {},
): string {
  const name = knownHostsName(host, port);
  const field = options.hash ? hashName(name, randomBytes(20)) : name;
  return `${field} ${key.type} ${key.base64}`;
}

/** Append an entry; creates the file (and ~/.ssh, mode 0700) when missing. Returns its line number. */
export async function appendKnownHost(
  file: string,
  host: string,
  port: number,
  key: PublicKey,
  options: AppendKnownHostOptions = {},
): Promise<number> {
  let existing = '';
  try {
    existing = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw writeError(file, error);
  }
  const separator = existing === '' || existing.endsWith('\n') ? '' : '\n';
  const line = existing === '' ? 1 : existing.split('\n').length + (separator === '' ? 0 : 1);
  try {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    await appendFile(file, `${separator}${formatKnownHostsLine(host, port, key, options)}\n`, {
      mode: 0o644,
    });
  } catch (error) {
    throw writeError(file, error);
  }
  return line;
}

/** `SHA256:<base64 without padding>`, as `ssh-keygen -l` and ssh's prompts print it. */
export function fingerprintSha256(key: PublicKey): string {
  const digest = createHash('sha256').update(Buffer.from(key.base64, 'base64')).digest('base64');
  return `SHA256:${digest.replace(/=+$/, '')}`;
}

/** The key type is the first string of the SSH wire-format blob (RFC 4253 section 6.6). */
export function publicKeyFromBlob(blob: Buffer): PublicKey {
  if (blob.length < 4) throw new Error('SSH public key blob is too short');
  const length = blob.readUInt32BE(0);
  if (length === 0 || length > 64 || blob.length < 4 + length)
    throw new Error('SSH public key blob is malformed');
  return { type: blob.subarray(4, 4 + length).toString('latin1'), base64: blob.toString('base64') };
}

function hashedNameMatches(field: string, name: string): boolean {
  const [, , salt, hash] = field.split('|');
  if (salt === undefined || hash === undefined) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

function hashName(name: string, salt: Buffer): string {
  const hmac = createHmac('sha1', salt).update(name).digest('base64');
  return `|1|${salt.toString('base64')}|${hmac}`;
}

/** OpenSSH's match_pattern: `*` any run, `?` one character, nothing else special. */
function globMatches(pattern: string, text: string): boolean {
  if (!pattern.includes('*') && !pattern.includes('?')) return pattern === text;
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replaceAll('*', '.*')
    .replaceAll('?', '.');
  return new RegExp(`^${source}$`, 's').test(text);
}

function writeError(file: string, cause: unknown): ApertusError {
  return new ApertusError('known-hosts-unwritable', `Cannot add the host key to ${file}.`, {
    kind: 'operation',
    hint: 'Check the permissions of the file and its directory, or pass another file with --known-hosts FILE.',
    cause,
  });
}
