import { access, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { ApertusError } from '../errors.js';
import { quoteArg } from './shell-quote.js';

// ssh2 is CommonJS: Node's ESM loader only finds its exports through the default import.
const { utils } = ssh2;

const DEFAULT_IDENTITIES = ['id_ed25519', 'id_ecdsa', 'id_rsa'];

/** What we log in with: a private key, or the ssh-agent that signs for us. */
export type Identity =
  | { privateKey: Buffer; passphrase?: string; described: string }
  | { agent: string; described: string };

/**
 * The identity `ssh` would use: `identityFile` when given, else the ssh-agent at
 * SSH_AUTH_SOCK, else the first of ~/.ssh/id_ed25519, id_ecdsa, id_rsa that exists.
 */
export async function resolveIdentity(options: {
  identityFile?: string;
  identityPassphrase?: string;
}): Promise<Identity> {
  if (options.identityFile !== undefined) {
    return loadIdentity(options.identityFile, options.identityPassphrase);
  }
  const agent = process.env.SSH_AUTH_SOCK;
  if (agent) return { agent, described: `the ssh-agent at ${agent}` };
  for (const name of DEFAULT_IDENTITIES) {
    const file = join(homedir(), '.ssh', name);
    const exists = await access(file).then(
      () => true,
      () => false,
    );
    if (exists) return loadIdentity(file, options.identityPassphrase);
  }
  throw new ApertusError('identity-missing', 'No SSH identity to log in with.', {
    hint: `Pass a private key with --identity FILE, or start ssh-agent and add your key (ssh-add), or create ~/.ssh/id_ed25519.`,
  });
}

/** Read and parse a private key file now, so a bad key fails before we connect. */
async function loadIdentity(file: string, passphrase: string | undefined): Promise<Identity> {
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
      throw new ApertusError(
        'identity-encrypted',
        `The SSH identity ${file} is encrypted with a passphrase.`,
        {
          hint: `Add it to ssh-agent (ssh-add ${quoteArg(file)}) and run without --identity, so the agent signs for apertus.`,
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
  return { privateKey: data, passphrase, described: file };
}
