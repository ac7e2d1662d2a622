import { createWriteStream } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { constants } from 'node:os';
import { type Duplex, type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { ApertusError } from '../errors.js';
import { commandFailedError, execResult } from './exec-result.js';
import type { ExecOptions, ExecResult, Transport, UploadOptions } from './transport.js';

export interface LocalTransportOptions {
  /** Working directory of commands. Default: this process's. */
  cwd?: string;
}

/** The Transport for `--local`: the same commands, run on the machine apertus runs on. */
export function createLocalTransport(options: LocalTransportOptions = {}): Transport {
  const description = 'local';
  return {
    description,

    async exec(command: string, execOptions: ExecOptions = {}): Promise<ExecResult> {
      const { stdin, signal } = execOptions;
      signal?.throwIfAborted();
      // Its own process group, so an abort kills what the command started too (`sh -c`
      // forks `sleep`, which would otherwise hold the pipes open until it ends).
      const running = execa('sh', ['-c', command], {
        cwd: options.cwd,
        reject: false,
        detached: true,
        // No stdin means EOF at once, as over SSH, so a command that reads stdin cannot hang.
        ...(stdin === undefined ? { stdin: 'ignore' as const } : { input: stdin }),
        encoding: 'utf8',
        stripFinalNewline: false,
      });
      if (execOptions.onStdout)
        running.stdout?.on('data', (chunk: Buffer | string) => {
          execOptions.onStdout?.(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
        });
      const abort = () => {
        if (running.pid !== undefined) {
          try {
            process.kill(-running.pid, 'SIGKILL');
          } catch {}
        }
      };
      signal?.addEventListener('abort', abort, { once: true });
      let subprocess: Awaited<typeof running>;
      try {
        subprocess = await running;
      } finally {
        signal?.removeEventListener('abort', abort);
      }
      signal?.throwIfAborted();
      const exitCode =
        subprocess.exitCode ??
        128 +
          (subprocess.signal
            ? (constants.signals[subprocess.signal as keyof typeof constants.signals] ?? 0)
            : 127);
      const result = execResult(command, exitCode, String(subprocess.stdout), String(subprocess.stderr));
      if (result.failed && execOptions.reject !== false) throw commandFailedError(result, description);
      return result;
    },

    async upload(source: Readable, localPath: string, uploadOptions: UploadOptions): Promise<void> {
      let done = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          done += chunk.length;
          uploadOptions.onBytes?.(done);
          callback(null, chunk);
        },
      });
      try {
        await pipeline(
          source,
          counter,
          createWriteStream(localPath),
          uploadOptions.signal ? { signal: uploadOptions.signal } : {},
        );
      } catch (error) {
        uploadOptions.signal?.throwIfAborted();
        throw new ApertusError('upload-failed', `Writing ${localPath} failed: ${(error as Error).message}.`, {
          kind: 'operation',
          hint: `Check that the directory of ${localPath} exists, is writable, and has ${uploadOptions.size} bytes free (df -h).`,
          cause: error,
        });
      }
      if (done !== uploadOptions.size) {
        throw new ApertusError(
          'upload-size-mismatch',
          `Writing ${localPath} took ${done} bytes, but ${uploadOptions.size} were expected.`,
          { kind: 'operation', hint: 'The source file changed while it was read; run the command again.' },
        );
      }
    },

    connect(port: number, host = '127.0.0.1'): Promise<Duplex> {
      return new Promise((resolve, reject) => {
        const socket = netConnect({ port, host });
        const onError = (error: Error) => {
          reject(
            new ApertusError('host-port-unreachable', `Cannot reach ${host}:${port}: ${error.message}.`, {
              kind: 'operation',
              hint: `Check that the service listens on ${host}:${port} (ss -ltn).`,
              cause: error,
            }),
          );
        };
        socket.once('error', onError);
        socket.once('connect', () => {
          socket.removeListener('error', onError);
          resolve(socket);
        });
      });
    },

    async close(): Promise<void> {},
  };
}
