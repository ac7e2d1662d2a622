/**
 * The gateway's certificate and key as the operator gives them (their PKI's, or made with
 * `apertus tls`): read on the operator's side and checked to be a certificate and the
 * private key that matches it before anything reaches a host.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ApertusError } from '../../errors.js';

export async function readTlsPair(certPath: string, keyPath: string): Promise<{ cert: string; key: string }> {
  const read = async (file: string, flag: string) => {
    try {
      return await readFile(file, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const why =
        code === 'ENOENT'
          ? `No file at ${file} (${flag}).`
          : code === 'EACCES'
            ? `${file} (${flag}) is not readable by this user.`
            : `${file} (${flag}) cannot be read: it is a directory or not a regular file.`;
      throw new ApertusError('usage', why, { hint: `Give ${flag} a PEM file on this machine.` });
    }
  };
  const cert = await read(certPath, '--tls-cert');
  const key = await read(keyPath, '--tls-key');
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch {
    throw new ApertusError('usage', `${certPath} holds no PEM certificate.`, {
      hint: 'Give --tls-cert the host certificate (PEM, the leaf first, then any intermediates).',
    });
  }
  let matches: boolean;
  try {
    matches = certificate.checkPrivateKey(createPrivateKey(key));
  } catch {
    throw new ApertusError('usage', `${keyPath} holds no unencrypted PEM private key.`, {
      hint: 'Give --tls-key the private key of --tls-cert, unencrypted PEM (it is stored 0600 on the host).',
    });
  }
  if (!matches) {
    throw new ApertusError('usage', `The key ${keyPath} does not belong to the certificate ${certPath}.`, {
      hint: `The certificate is for ${certificate.subjectAltName ?? certificate.subject}; give the key it was issued for.`,
    });
  }
  // An expired certificate would fail every client; say so before the install does.
  if (new Date(certificate.validTo).getTime() < Date.now()) {
    throw new ApertusError('usage', `The certificate ${certPath} expired on ${certificate.validTo}.`, {
      hint: 'Issue a new one (`apertus tls cert`, or your PKI) and install again.',
    });
  }
  return { cert, key };
}
