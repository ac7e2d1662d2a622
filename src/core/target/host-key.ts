/**
 * The host's own Ed25519 key pair, made at the first command that records anything:
 * `<root>/keys/host.key` (0600, minisign's unencrypted format) and `host.pub`. It signs
 * every record of the host's audit log and the RAG service's checkpoints, so a record
 * cannot be forged without the key, and the public half lets `apertus audit verify` (or
 * anyone with the .pub file) check them. The operator's apertus reads the secret key over
 * the session's SSH channel to sign, and never writes it anywhere else.
 */

import { ApertusError } from '../errors.js';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import {
  createKeyPair,
  formatPublicKey,
  formatSecretKey,
  type PublicKey,
  parsePublicKey,
  parseSecretKey,
  type SecretKey,
} from '../sign/keys.js';
import type { HostLayout } from './layout.js';
import type { HostProbe } from './probe.js';
import { writeFileScript } from './safe-write.js';

/** The host key's public half as the probe read it; null before the host made one. */
export function hostPublicKey(probe: HostProbe, layout: HostLayout): PublicKey | null {
  const line = probe.root.hostPublicKey;
  return line === undefined ? null : parsePublicKey(line, layout.hostPublicKey);
}

/** Reads the host's secret key, making the pair first when the host has none. */
export async function readOrCreateHostKey(
  transport: Transport,
  layout: HostLayout,
  probe: HostProbe,
): Promise<{ secretKey: SecretKey; created: boolean }> {
  if (probe.root.hostPublicKey === undefined) {
    const { secretKey, publicKey } = createKeyPair();
    await transport.exec(
      [
        'set -e',
        `mkdir -p ${shellQuote([layout.keys])}`,
        `chmod 0700 ${shellQuote([layout.keys])}`,
        writeFileScript(layout.hostSecretKey, formatSecretKey(secretKey), '0600'),
        writeFileScript(layout.hostPublicKey, formatPublicKey(publicKey), '0644'),
      ].join('\n'),
    );
    return { secretKey, created: true };
  }
  const result = await transport.exec(shellQuote(['cat', layout.hostSecretKey]), { reject: false });
  if (result.exitCode !== 0) {
    throw new ApertusError(
      'host-key-missing',
      `${layout.hostPublicKey} exists on ${transport.description} but ${layout.hostSecretKey} cannot be read (${result.stderr.trim() || `exit ${result.exitCode}`}).`,
      {
        kind: 'operation',
        hint: 'The host key signs every audit record; restore host.key from a backup. Do not make a new one while records signed by the old one should still verify.',
      },
    );
  }
  const secretKey = parseSecretKey(result.stdout, layout.hostSecretKey);
  const published = hostPublicKey(probe, layout);
  if (published !== null && !published.key.equals(secretKey.publicKey.key)) {
    throw new ApertusError(
      'host-key-mismatch',
      `${layout.hostSecretKey} and ${layout.hostPublicKey} on ${transport.description} are not one key pair.`,
      { kind: 'operation', hint: 'Restore both from the same backup; records are verified with host.pub.' },
    );
  }
  return { secretKey, created: false };
}
