/**
 * The keys a host trusts to sign what it runs, as apt trusts its keyrings:
 * `<root>/trust/<KEY ID>.pub`, minisign public keys. A bundle installs only when its
 * SHA256SUMS signature verifies with one of them (or, on a host that trusts no key, with
 * the key the first install names, or not at all with --allow-unsigned, which is recorded).
 */
import { ApertusError } from '../errors.js';
import { shellQuote } from '../host/shell-quote.js';
import { formatPublicKey, type PublicKey, parsePublicKey } from '../sign/keys.js';
import { verifySignature } from '../sign/minisign.js';
import type { HostLayout } from './layout.js';
import type { HostProbe } from './probe.js';
import { writeFileScript } from './safe-write.js';
import type { Signer } from './state.js';

export interface TrustedKey {
  keyId: string;
  /** The file under trust/. */
  path: string;
  key: PublicKey;
}

/** The host's trusted keys as the probe read them; a file that is not a key, or not named by its key id, is an error. */
export function trustedKeys(probe: HostProbe, layout: HostLayout, host: string): TrustedKey[] {
  const keys: TrustedKey[] = [];
  for (const [file, line] of probe.root.trustedKeys) {
    const where = `${layout.trust}/${file}`;
    let key: PublicKey;
    try {
      key = parsePublicKey(line, where);
    } catch {
      throw invalidStore(`${where} on ${host} is not a minisign public key`, where);
    }
    if (file !== `${key.keyId}.pub`)
      throw invalidStore(`${where} on ${host} holds key ${key.keyId}, not the key its name says`, where);
    keys.push({ keyId: key.keyId, path: layout.trustedKey(key.keyId), key });
  }
  return keys.sort((a, b) => a.keyId.localeCompare(b.keyId));
}

function invalidStore(message: string, file: string): ApertusError {
  return new ApertusError('host-trust-invalid', `${message}.`, {
    kind: 'operation',
    hint: `Move ${file} aside on the host, then add the key again with \`apertus trust add\`.`,
  });
}

/** What a bundle carries to prove who signed it: the signed checksum list and its signature. */
export interface BundleSignature {
  sums: Buffer | null;
  /** The .minisig text; null for an unsigned bundle. */
  text: string | null;
  /** The key id the signature names (unchecked). */
  keyId: string | null;
}

/** The signer, when the signature verifies with one of `keys`; else why not. */
export function signerAmong(
  signature: BundleSignature,
  keys: readonly TrustedKey[],
): { signer: Signer } | { reason: string } {
  if (signature.text === null || signature.sums === null) return { reason: 'the bundle is not signed' };
  const key = keys.find((k) => k.keyId === signature.keyId);
  if (key === undefined) {
    return {
      reason: `it is signed by key ${signature.keyId ?? '(unreadable)'}, which ${keys.length === 0 ? 'is not the key given' : `is not among the trusted keys ${keys.map((k) => k.keyId).join(', ')}`}`,
    };
  }
  const check = verifySignature(signature.sums, signature.text, key.key);
  if (!check.valid) return { reason: `its signature by key ${key.keyId} does not verify: ${check.reason}` };
  return { signer: { keyId: check.keyId, trustedComment: check.trustedComment } };
}

export function addTrustedKeyScript(layout: HostLayout, key: PublicKey): string {
  return [
    `mkdir -p ${shellQuote([layout.trust])}`,
    writeFileScript(layout.trustedKey(key.keyId), formatPublicKey(key), '0644'),
  ].join(' && \\\n');
}

export function removeTrustedKeyScript(layout: HostLayout, keyId: string): string {
  return shellQuote(['rm', '-f', layout.trustedKey(keyId)]);
}
