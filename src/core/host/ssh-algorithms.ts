import type { Algorithms } from 'ssh2';
import type { HostAddress } from './host-address.js';
import { type KnownHostsEntry, knownKeyTypes } from './known-hosts.js';

// GCM is the fastest cipher both OpenSSH and Node's OpenSSL offer on AES-NI hardware: it
// decides upload throughput, since the host's sshd decrypts every byte of the bundle.
const PREFERRED_CIPHERS = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com'];

const HOST_KEY_ALGORITHMS: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};

/** Offer the host key types known_hosts already holds first, as ssh does, so a host with
 * several keys presents the one we can check rather than one we have never seen. */
export function algorithmsFor(entries: readonly KnownHostsEntry[], address: HostAddress): Algorithms {
  const known = knownKeyTypes(entries, address.host, address.port);
  const preferred = known.flatMap((type) => HOST_KEY_ALGORITHMS[type] ?? []);
  return {
    cipher: { remove: PREFERRED_CIPHERS, prepend: PREFERRED_CIPHERS } as Algorithms['cipher'],
    ...(preferred.length > 0
      ? { serverHostKey: { remove: preferred, prepend: preferred } as Algorithms['serverHostKey'] }
      : {}),
  };
}
