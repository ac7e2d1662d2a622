import { access, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import ssh2, { type AuthMethod } from 'ssh2';
import { ApertusError } from '../errors.js';
import { quoteArg } from './shell-quote.js';

// ssh2 is CommonJS: Node's ESM loader only finds its exports through the default import.
const { utils, OpenSSHAgent } = ssh2;

const DEFAULT_IDENTITIES = ['id_ed25519', 'id_ecdsa', 'id_rsa'];

/** One way to log in: a private key we read, or the agent signing with the keys it holds. */
export type IdentityMethod =
  | { kind: 'key'; privateKey: Buffer; passphrase?: string; file: string }
  | { kind: 'agent'; agent: InstanceType<typeof OpenSSHAgent>; socket: string; onlyFor?: string[] };

/** What we log in with, tried in order, as ssh tries its identities. */
export interface Identity {
  methods: IdentityMethod[];
  /** For messages: `/home/ops/.ssh/id_ed25519 (through the ssh-agent at ...)`. */
  described: string;
}

export interface IdentityOptions {
  /** --identity, or the IdentityFile values of ssh_config, in order. */
  identityFiles?: readonly string[];
  /** For an encrypted identity file. */
  identityPassphrase?: string;
  /**
   * IdentitiesOnly: of the agent's keys, use only those of `identityFiles` (ssh_config(5):
   * "only use the configured authentication identity ... even if ssh-agent offers more").
   */
  identitiesOnly?: boolean;
  /** Default process.env.SSH_AUTH_SOCK. */
  agentSocket?: string | undefined;
}

/**
 * The identities `ssh` would use. With identity files: each in order; a file that is
 * encrypted (and no passphrase given) is used through the agent when the agent holds its key,
 * as ssh does after `ssh-add`. Then, unless IdentitiesOnly, the agent's other keys. Without
 * identity files: the agent, else the first of ~/.ssh/id_ed25519, id_ecdsa, id_rsa.
 */
export async function resolveIdentity(options: IdentityOptions): Promise<Identity> {
  const agentSocket = 'agentSocket' in options ? options.agentSocket : process.env.SSH_AUTH_SOCK;
  const files = options.identityFiles ?? [];
  if (files.length === 0) {
    if (agentSocket) {
      return {
        methods: [{ kind: 'agent', agent: new OpenSSHAgent(agentSocket), socket: agentSocket }],
        described: `the ssh-agent at ${agentSocket}`,
      };
    }
    for (const name of DEFAULT_IDENTITIES) {
      const file = join(homedir(), '.ssh', name);
      const exists = await access(file).then(
        () => true,
        () => false,
      );
      if (exists) return describe([await loadIdentity(file, options.identityPassphrase, agentSocket)]);
    }
    throw new ApertusError('identity-missing', 'No SSH identity to log in with.', {
      hint: `Pass a private key with --identity FILE, or start ssh-agent and add your key (ssh-add), or create ~/.ssh/id_ed25519.`,
    });
  }

  const methods: IdentityMethod[] = [];
  for (const file of files) methods.push(await loadIdentity(file, options.identityPassphrase, agentSocket));
  if (agentSocket && !options.identitiesOnly && !methods.some((m) => m.kind === 'agent' && !m.onlyFor)) {
    methods.push({ kind: 'agent', agent: new OpenSSHAgent(agentSocket), socket: agentSocket });
  }
  return describe(methods);
}

/** ssh2's authHandler list for `identity`, logging in as `username`. */
export function authMethods(identity: Identity, username: string): AuthMethod[] {
  return identity.methods.map((method): AuthMethod => {
    if (method.kind === 'key') {
      return {
        type: 'publickey',
        username,
        key: method.privateKey,
        ...(method.passphrase === undefined ? {} : { passphrase: method.passphrase }),
      } as AuthMethod;
    }
    const agent = method.onlyFor ? onlyKeys(method.agent, method.onlyFor) : method.agent;
    return { type: 'agent', username, agent } as AuthMethod;
  });
}

function describe(methods: IdentityMethod[]): Identity {
  const parts = methods.map((m) =>
    m.kind === 'key'
      ? m.file
      : m.onlyFor
        ? `the key of ${m.onlyFor.length === 1 ? 'that file' : 'those files'} in the ssh-agent at ${m.socket}`
        : `the ssh-agent at ${m.socket}`,
  );
  return { methods, described: parts.join(', then ') };
}

/** The agent, offering only the keys whose public blobs (base64) are in `blobs`. */
function onlyKeys(agent: InstanceType<typeof OpenSSHAgent>, blobs: readonly string[]) {
  const filtered = Object.create(agent) as InstanceType<typeof OpenSSHAgent>;
  filtered.getIdentities = (cb) => {
    agent.getIdentities((error, keys) => {
      if (error || !keys) {
        cb(error ?? new Error('the agent listed no keys'));
        return;
      }
      cb(
        undefined as unknown as Error,
        keys.filter((key) => 'getPublicSSH' in key && blobs.includes(key.getPublicSSH().toString('base64'))),
      );
    });
  };
  return filtered;
}

/** Read and parse a private key file now, so a bad key fails before we connect. */
async function loadIdentity(
  file: string,
  passphrase: string | undefined,
  agentSocket: string | undefined,
): Promise<IdentityMethod> {
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (cause) {
    throw new ApertusError('identity-unreadable', `Cannot read the SSH identity ${file}.`, {
      hint: 'Check the path and its permissions, or pass another key with --identity FILE.',
      cause,
    });
  }
  const parsed = utils.parseKey(data, passphrase);
  if (parsed instanceof Error) {
    if (/encrypted/i.test(parsed.message) && passphrase === undefined) {
      // ssh signs with the agent's copy of a key whose file is encrypted: its public half is
      // in the clear (in the OpenSSH key file itself, or FILE.pub), so we can tell the agent
      // which key to use without the passphrase.
      const publicBlob = await publicBlobOf(file, data);
      if (agentSocket && publicBlob) {
        return {
          kind: 'agent',
          agent: new OpenSSHAgent(agentSocket),
          socket: agentSocket,
          onlyFor: [publicBlob],
        };
      }
      throw new ApertusError(
        'identity-encrypted',
        `The SSH identity ${file} is encrypted with a passphrase.`,
        {
          hint: agentSocket
            ? `Its public key is unknown (no ${file}.pub); create it with: ssh-keygen -y -f ${quoteArg(file)} > ${quoteArg(`${file}.pub`)}`
            : `Start ssh-agent, add the key (ssh-add ${quoteArg(file)}) and run again with SSH_AUTH_SOCK set, so the agent signs for apertus.`,
          cause: parsed,
        },
      );
    }
    throw new ApertusError('identity-invalid', `Cannot use ${file} as an SSH identity: ${parsed.message}.`, {
      hint: 'Pass an OpenSSH private key (ed25519, ecdsa or rsa), e.g. one made by ssh-keygen -t ed25519.',
      cause: parsed,
    });
  }
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key.getPrivatePEM() === null) {
    throw new ApertusError('identity-invalid', `${file} holds no private key (is it the .pub file?).`, {
      hint: 'Pass the private key file, without .pub, with --identity FILE.',
    });
  }
  return { kind: 'key', privateKey: data, ...(passphrase === undefined ? {} : { passphrase }), file };
}

/**
 * The base64 public key blob of an encrypted private key: from the `openssh-key-v1` header
 * (PROTOCOL.key: magic, cipher, kdf, kdf options, key count, then the public keys, all in
 * the clear), else from `FILE.pub`.
 */
async function publicBlobOf(file: string, data: Buffer): Promise<string | undefined> {
  const fromHeader = openSshPublicBlob(data);
  if (fromHeader) return fromHeader;
  try {
    const pub = (await readFile(`${file}.pub`, 'utf8')).trim().split(/\s+/);
    return pub[1];
  } catch {
    return undefined;
  }
}

function openSshPublicBlob(data: Buffer): string | undefined {
  const match = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(
    data.toString('latin1'),
  );
  if (!match?.[1]) return undefined;
  const raw = Buffer.from(match[1].replace(/\s+/g, ''), 'base64');
  const magic = Buffer.from('openssh-key-v1\0', 'latin1');
  if (!raw.subarray(0, magic.length).equals(magic)) return undefined;
  let offset = magic.length;
  const readString = (): Buffer | undefined => {
    if (offset + 4 > raw.length) return undefined;
    const length = raw.readUInt32BE(offset);
    offset += 4;
    if (offset + length > raw.length) return undefined;
    const value = raw.subarray(offset, offset + length);
    offset += length;
    return value;
  };
  for (let i = 0; i < 3; i++) if (readString() === undefined) return undefined;
  if (offset + 4 > raw.length || raw.readUInt32BE(offset) < 1) return undefined;
  offset += 4;
  return readString()?.toString('base64');
}
