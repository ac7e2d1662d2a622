/**
 * Whether a host takes a bundle, decided by the host's trust store before anything of the
 * bundle is sent (trust-store.ts holds the keys; this is the policy):
 *
 * - a host that trusts keys installs only bundles one of them signed; `--trust-key` may
 *   name one of those keys (a no-op) but never adds another: `apertus trust add` does,
 *   as its own audited act; `--allow-unsigned` is refused;
 * - a host that trusts no key (a new root) needs `--trust-key PUB`, which the bundle must
 *   verify with and which becomes the host's first trusted key, or `--allow-unsigned`,
 *   for labs: recorded in the report, state.json and the audit record, and warned about
 *   by every later `apertus status` until a key is trusted.
 */
import { ApertusError } from '../errors.js';
import type { PublicKey } from '../sign/keys.js';
import type { Signer } from '../target/state.js';
import { type BundleSignature, signerAmong, type TrustedKey } from '../target/trust-store.js';

export interface TrustRequest {
  /** The key named with --trust-key, read on the operator's side. */
  trustKey?: PublicKey | undefined;
  allowUnsigned?: boolean | undefined;
}

export interface TrustDecision {
  signer: Signer | null;
  mode: 'keys' | 'unsigned';
  /** The key to add to the host's empty trust store before installing. */
  add: PublicKey | null;
  /** Key ids the host trusts (after `add`). */
  trusted: string[];
}

export function decideTrust(
  signature: BundleSignature,
  keys: readonly TrustedKey[],
  request: TrustRequest,
  where: { host: string; bundle: string },
): TrustDecision {
  const trusted = keys.map((k) => k.keyId);
  if (keys.length > 0) {
    if (request.allowUnsigned) {
      throw new ApertusError(
        'trust-unsigned-refused',
        `${where.host} trusts signing keys ${trusted.join(', ')}: it installs only bundles one of them signed, so --allow-unsigned does not apply.`,
        {
          hint: `Sign the bundle with a trusted key (apertus bundle --sign), then install without --allow-unsigned.`,
        },
      );
    }
    if (request.trustKey && !trusted.includes(request.trustKey.keyId)) {
      throw new ApertusError(
        'trust-key-not-trusted',
        `${where.host} already trusts ${trusted.join(', ')}; --trust-key names key ${request.trustKey.keyId}, which it does not trust, and install only names the first key of a new host.`,
        {
          hint: `Add the key as its own audited step: apertus trust add KEY.pub (same --host and --root), then install again.`,
        },
      );
    }
    const verdict = signerAmong(signature, keys);
    if ('reason' in verdict) throw untrusted(where, verdict.reason);
    return { signer: verdict.signer, mode: 'keys', add: null, trusted };
  }
  if (request.trustKey) {
    const key = request.trustKey;
    const verdict = signerAmong(signature, [{ keyId: key.keyId, path: '', key }]);
    if ('reason' in verdict) throw untrusted(where, `${verdict.reason} (--trust-key names ${key.keyId})`);
    return { signer: verdict.signer, mode: 'keys', add: key, trusted: [key.keyId] };
  }
  if (request.allowUnsigned) return { signer: null, mode: 'unsigned', add: null, trusted: [] };
  throw new ApertusError(
    'trust-anchor-missing',
    `${where.host} trusts no signing key yet, and installs nothing without knowing whose bundles it runs.`,
    {
      hint: `Pass --trust-key KEY.pub with the public key ${signature.keyId ? `${signature.keyId} ` : ''}that signed ${where.bundle} (the host keeps it under trust/ and from then on installs only bundles it or another trusted key signed), or --allow-unsigned on a lab host (recorded, and warned about by apertus status).`,
    },
  );
}

function untrusted(where: { host: string; bundle: string }, reason: string): ApertusError {
  return new ApertusError(
    'bundle-not-trusted',
    `${where.host} refuses ${where.bundle}: ${reason}. Nothing was sent.`,
    {
      kind: 'operation',
      hint: 'Install a bundle signed by a key the host trusts (apertus status lists them); to trust another key, run apertus trust add KEY.pub first.',
    },
  );
}
