import type { Readable } from 'node:stream';
import { ApertusError } from '../errors.js';
import { quoteArg } from './shell-quote.js';
import type { SshConnection } from './ssh-connection.js';
import { runRemoteCommand } from './ssh-exec.js';
import type { UploadOptions } from './transport.js';

/**
 * Transport.upload over SSH: stream `source` into `cat > remotePath` on the host, and check
 * that exactly `options.size` bytes went out.
 */
export async function uploadOverSsh(
  connection: SshConnection,
  source: Readable,
  remotePath: string,
  options: UploadOptions,
): Promise<void> {
  const { where, address } = connection;
  const command = `cat > ${quoteArg(remotePath)}`;
  const { result, stdinBytes } = await runRemoteCommand(connection, command, {
    stdin: source,
    signal: options.signal,
    onBytes: options.onBytes,
  });
  if (result.failed) {
    const why =
      result.stderr.trim().split('\n').slice(-5).join('\n') || `cat exited with code ${result.exitCode}`;
    throw new ApertusError('upload-failed', `Upload to ${remotePath} on ${where} failed: ${why}`, {
      kind: 'operation',
      hint: `Check that the directory of ${remotePath} exists on the host, is writable by ${address.user}, and has ${options.size} bytes free (df -h).`,
      details: result,
    });
  }
  if (stdinBytes !== options.size) {
    throw new ApertusError(
      'upload-size-mismatch',
      `Upload to ${remotePath} on ${where} sent ${stdinBytes} bytes, but ${options.size} were expected.`,
      { kind: 'operation', hint: 'The local file changed while it was read; run the command again.' },
    );
  }
}
