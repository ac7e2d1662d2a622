/**
 * `apertus tls`: an offline certificate authority for labs and the per-host certificates
 * the gateway serves, made with the openssl CLI (no ASN.1 of our own). Sites with their own
 * PKI skip this and give the gateway their certificate and key.
 *
 * Private keys never pass through a file openssl creates: `openssl genpkey` writes the key
 * to its stdout, and this module creates the file itself, exclusively (never over an
 * existing file or through a planted link) and with mode 0600 from the start. Everything
 * else openssl reads from files in a private temp dir or from argv that holds no secret.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApertusError } from '../errors.js';

export interface CaFiles {
  key: string;
  cert: string;
}

export interface IssuedCertificate {
  key: string;
  cert: string;
  names: string[];
  notAfterDays: number;
}

const DNS_NAME =
  /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const COMMON_NAME = /^[A-Za-z0-9 ._-]{1,64}$/;

function openssl(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('openssl', args, { maxBuffer: 1024 * 1024 }, (error, stdout, stderr) => {
      if (error === null) return resolve(stdout);
      const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
      reject(
        new ApertusError(
          missing ? 'openssl-missing' : 'openssl-failed',
          missing
            ? 'The openssl command is not installed.'
            : `openssl ${args[0]} failed: ${stderr.trim() || error.message}`,
          {
            kind: 'operation',
            hint: missing
              ? 'Install openssl (Debian: apt-get install openssl), or use certificates from your own PKI.'
              : 'Check the files named above; run the same command again with a fresh --out.',
          },
        ),
      );
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Writes a file that must not exist yet, with its mode set at creation. */
async function writeNew(file: string, content: string, mode: number): Promise<void> {
  const handle = await open(file, 'wx', mode).catch((error: NodeJS.ErrnoException) => {
    throw new ApertusError(
      error.code === 'EEXIST' ? 'file-exists' : 'output-unwritable',
      error.code === 'EEXIST'
        ? `${file} already exists; apertus never overwrites a key or certificate.`
        : `Cannot create ${file}: ${error.message}`,
      {
        hint: 'Choose another --out (an existing directory you can write to), or move the old files away first.',
      },
    );
  });
  try {
    await handle.writeFile(content);
  } finally {
    await handle.close();
  }
}

async function newPrivateKey(file: string): Promise<void> {
  const pem = await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']);
  await writeNew(file, pem, 0o600);
}

/** The names a certificate is for: DNS names and IP addresses, checked as they enter. */
export function parseCertificateNames(names: string[]): string[] {
  if (names.length === 0)
    throw new ApertusError('usage', 'A certificate needs at least one name.', {
      hint: 'Pass --name once per DNS name or IP address the gateway is reached at, e.g. --name gpu1.lab --name 10.0.0.5.',
    });
  for (const name of names) {
    if (isIP(name) === 0 && !DNS_NAME.test(name))
      throw new ApertusError('usage', `"${name}" is neither a DNS name nor an IP address.`, {
        hint: 'Pass host names such as gpu1.lab, or addresses such as 10.0.0.5.',
      });
  }
  return names;
}

/** Makes an offline CA in `dir`: ca.key (0600) and ca.pem. */
export async function createCa(options: { dir: string; name?: string; days?: number }): Promise<CaFiles> {
  const name = options.name ?? 'apertus offline CA';
  if (!COMMON_NAME.test(name))
    throw new ApertusError('usage', `The CA name "${name}" has characters a subject cannot hold here.`, {
      hint: 'Use letters, digits, spaces, dots, dashes and underscores (at most 64).',
    });
  const files = { key: path.join(options.dir, 'ca.key'), cert: path.join(options.dir, 'ca.pem') };
  await newPrivateKey(files.key);
  const cert = await openssl([
    ...['req', '-x509', '-new', '-key', files.key, '-sha256', '-days', String(options.days ?? 3650)],
    ...['-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0'],
    ...['-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
  ]);
  await writeNew(files.cert, cert, 0o644);
  return files;
}

/** Issues a server certificate for `names`, signed by the CA in `caDir`: PREFIX.key (0600) and PREFIX.pem. */
export async function issueCertificate(options: {
  caDir: string;
  names: string[];
  out: string;
  days?: number;
}): Promise<IssuedCertificate> {
  const names = parseCertificateNames(options.names);
  const days = options.days ?? 825;
  const ca = { key: path.join(options.caDir, 'ca.key'), cert: path.join(options.caDir, 'ca.pem') };
  const files = { key: `${options.out}.key`, cert: `${options.out}.pem` };
  const work = await mkdtemp(path.join(tmpdir(), 'apertus-tls-'));
  try {
    await newPrivateKey(files.key);
    const san = names.map((n) => (isIP(n) === 0 ? `DNS:${n}` : `IP:${n}`)).join(',');
    const ext = path.join(work, 'server.ext');
    await writeFile(
      ext,
      `subjectAltName=${san}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n`,
    );
    const csr = path.join(work, 'server.csr');
    await openssl(['req', '-new', '-key', files.key, '-subj', `/CN=${names[0]}`, '-out', csr]);
    const cert = await openssl([
      ...['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-sha256', '-days', String(days)],
      ...['-set_serial', `0x${randomBytes(16).toString('hex')}`, '-extfile', ext],
    ]);
    await writeNew(files.cert, cert, 0o644);
    return { ...files, names, notAfterDays: days };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
