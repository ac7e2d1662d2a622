import { ApertusError } from '../errors.js';
import type { OnProgress } from '../progress.js';
import type { HostAddress } from './host-address.js';
import {
  appendKnownHost,
  checkHostKey,
  fingerprintSha256,
  type KnownHostsEntry,
  knownHostsName,
  type PublicKey,
  publicKeyFromBlob,
} from './known-hosts.js';
import { quoteArg } from './shell-quote.js';

export interface HostKeyVerifierOptions {
  address: HostAddress;
  /** formatHostAddress(address), for messages. */
  where: string;
  knownHostsFile: string;
  knownEntries: readonly KnownHostsEntry[];
  acceptNewHostKey: boolean | undefined;
  onProgress: OnProgress;
}

/** The host key check of one connection: ssh2's hostVerifier and what it decided. */
export interface HostKeyVerifier {
  readonly hostVerifier: (blob: Buffer, verify: (valid: boolean) => void) => boolean | undefined;
  /** Why the host key was refused; undefined while it was not. */
  readonly refusal: () => ApertusError | undefined;
  /** The key known_hosts vouched for (or that we just added to it); undefined until then. */
  readonly verifiedKey: () => PublicKey | undefined;
}

/**
 * Check the host key against known_hosts before we authenticate: an unknown key is refused
 * unless `acceptNewHostKey`, a changed or revoked one always is.
 */
export function createHostKeyVerifier(options: HostKeyVerifierOptions): HostKeyVerifier {
  const { address, where, knownHostsFile, knownEntries, onProgress } = options;
  let refusal: ApertusError | undefined;
  let verifiedKey: PublicKey | undefined;

  const hostVerifier = (blob: Buffer, verify: (valid: boolean) => void): boolean | undefined => {
    // ssh2 asks again at every re-key (OpenSSH re-keys every 1-4 GB of a long upload). Those
    // answers must be synchronous: with an async answer mid-stream ssh2 corrupts the
    // connection ("Bad packet length" on the host). Only the first, which may append to
    // known_hosts, is async.
    if (verifiedKey !== undefined) return sameHostKeyAgain(blob);
    decideHostKey(blob).then(verify, (error: unknown) => {
      refusal =
        error instanceof ApertusError
          ? error
          : new ApertusError('host-key-check-failed', `Could not check the host key of ${where}.`, {
              kind: 'operation',
              cause: error,
            });
      verify(false);
    });
    return undefined;
  };

  const sameHostKeyAgain = (blob: Buffer): boolean => {
    if (verifiedKey?.base64 === blob.toString('base64')) return true;
    refusal = new ApertusError(
      'host-key-changed',
      `The host key of ${where} changed during the connection, to ${fingerprintSha256(publicKeyFromBlob(blob))}.`,
      {
        kind: 'operation',
        hint: 'Someone may be intercepting the connection: check the host before connecting again.',
      },
    );
    return false;
  };

  const decideHostKey = async (blob: Buffer): Promise<boolean> => {
    const presented = publicKeyFromBlob(blob);
    const fingerprint = fingerprintSha256(presented);
    const check = checkHostKey(knownEntries, address.host, address.port, presented);
    const name = knownHostsName(address.host, address.port);
    switch (check.status) {
      case 'match':
        verifiedKey = presented;
        return true;
      case 'revoked':
        refusal = new ApertusError(
          'host-key-revoked',
          `${where} presented the ${presented.type} host key ${fingerprint}, which ${knownHostsFile} line ${check.entry?.line} marks @revoked.`,
          {
            kind: 'operation',
            hint: 'Do not connect: ask the host administrator for the host key that replaced it and install that one.',
          },
        );
        return false;
      case 'changed': {
        const old = check.entry;
        refusal = new ApertusError(
          'host-key-changed',
          `The host key of ${where} has CHANGED: it presented ${presented.type} ${fingerprint}, but ${knownHostsFile} line ${old?.line} holds a different ${old?.key.type} key for it. Someone may be intercepting the connection, or the host was reinstalled.`,
          {
            kind: 'operation',
            hint: `Check the new fingerprint with the host's administrator (on the host: ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub). Only if the change is expected, remove the old key with: ssh-keygen -R ${quoteArg(name)} -f ${quoteArg(knownHostsFile)}, then connect again with --accept-new-host-key.`,
            details: { fingerprint, knownHostsFile, line: old?.line },
          },
        );
        return false;
      }
      case 'unknown': {
        if (!options.acceptNewHostKey) {
          const port = address.port === 22 ? '' : `-p ${address.port} `;
          refusal = new ApertusError(
            'host-key-unknown',
            `${where} is not in ${knownHostsFile}; its ${presented.type} host key fingerprint is ${fingerprint}.`,
            {
              kind: 'operation',
              hint: `Check that fingerprint out of band (on the host: ssh-keygen -lf /etc/ssh/ssh_host_${presented.type.replace(/^ssh-|-sha2-.*$/g, '')}_key.pub), then pass --accept-new-host-key, or add it with: ssh-keyscan ${port}-t ${presented.type} ${quoteArg(address.host)} >> ${quoteArg(knownHostsFile)}`,
              details: { fingerprint, knownHostsFile },
            },
          );
          return false;
        }
        const line = await appendKnownHost(knownHostsFile, address.host, address.port, presented);
        onProgress({
          step: 'host.host-key',
          status: 'info',
          detail: `Trusted new host key of ${where} (${presented.type} ${fingerprint}): added to ${knownHostsFile} line ${line}`,
        });
        verifiedKey = presented;
        return true;
      }
    }
  };

  return {
    hostVerifier,
    refusal: () => refusal,
    verifiedKey: () => verifiedKey,
  };
}
