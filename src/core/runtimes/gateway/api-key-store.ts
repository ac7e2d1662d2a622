/**
 * The gateway's key file on a host, read and written through the transport: by
 * `apertus keys api` (operations/api-keys.ts) and by install's verification, which makes a
 * key for itself and takes it out again. Written whole and renamed into place
 * (target/safe-write.ts), 0600 in a 0700 directory, so the gateway never reads half a file.
 */
import { ApertusError } from '../../errors.js';
import { shellQuote } from '../../host/shell-quote.js';
import type { Transport } from '../../host/transport.js';
import { writeFileScript } from '../../target/safe-write.js';
import { type ApiKeyFile, EMPTY_KEY_FILE, parseApiKeyFile, serializeApiKeyFile } from './api-key-file.js';

export async function readKeyFile(
  transport: Transport,
  file: string,
  signal?: AbortSignal,
): Promise<ApiKeyFile> {
  const q = shellQuote([file]);
  const result = await transport.exec(`if [ -e ${q} ]; then cat ${q}; else exit 3; fi`, {
    reject: false,
    signal,
  });
  if (result.exitCode === 3) return { ...EMPTY_KEY_FILE, keys: [] };
  if (result.exitCode !== 0) {
    throw new ApertusError(
      'api-keys-unreadable',
      `Cannot read ${file} on ${transport.description}: ${result.stderr.trim() || `exit ${result.exitCode}`}.`,
      { kind: 'operation', hint: `Check the permissions of ${file} on the host.` },
    );
  }
  return parseApiKeyFile(result.stdout, `${file} on ${transport.description}`);
}

export async function writeKeyFile(
  transport: Transport,
  file: string,
  dir: string,
  content: ApiKeyFile,
): Promise<void> {
  // Owned like its directory: under systemd the gateway reads it as the service user.
  await transport.exec(
    `mkdir -p ${shellQuote([dir])} && chmod 0700 ${shellQuote([dir])}\n${writeFileScript(file, serializeApiKeyFile(content), '0600')} && chown --reference=${shellQuote([dir])} ${shellQuote([file])}`,
  );
}
