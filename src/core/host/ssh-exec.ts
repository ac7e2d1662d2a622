import type { Readable } from 'node:stream';
import type { ClientChannel } from 'ssh2';
import { ApertusError } from '../errors.js';
import { commandFailedError, execResult } from './exec-result.js';
import { quoteArg } from './shell-quote.js';
import type { SshConnection } from './ssh-connection.js';
import type { ExecOptions, ExecResult } from './transport.js';

const STDIN_BUFFER_BYTES = 4 * 1024 * 1024;

const PID_MARKER = 'apertus-remote-pid:';

export interface RemoteCommandOptions {
  stdin?: ExecOptions['stdin'];
  signal?: AbortSignal;
  /** Called with the total of stdin bytes sent so far. */
  onBytes?: (done: number) => void;
  onStdout?: ((chunk: Buffer) => void) | undefined;
}

/** Transport.exec over SSH: run `command`, and reject on a non-zero exit unless `reject: false`. */
export async function execOverSsh(
  connection: SshConnection,
  command: string,
  options: ExecOptions = {},
): Promise<ExecResult> {
  const { result } = await runRemoteCommand(connection, command, {
    stdin: options.stdin,
    signal: options.signal,
    onStdout: options.onStdout,
  });
  if (result.failed && options.reject !== false) throw commandFailedError(result, connection.description);
  return result;
}

/**
 * Run `command`, feed it `stdin`, collect its output. Resolves with the exit code once the
 * channel closes; rejects on abort, a stdin failure, or a lost connection.
 */
export async function runRemoteCommand(
  connection: SshConnection,
  command: string,
  { stdin, signal, onBytes, onStdout }: RemoteCommandOptions,
): Promise<{ result: ExecResult; stdinBytes: number }> {
  signal?.throwIfAborted();
  const channel = await openExec(connection, command);
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  let exitCode: number | undefined;
  let stdinBytes = 0;
  let channelClosed = false;
  let sourceError: unknown;
  let remotePid: number | undefined;
  let killWhenPidKnown = false;
  channel.on('data', (chunk: Buffer) => {
    stdout.push(chunk);
    onStdout?.(chunk);
  });
  channel.stderr.on('data', (chunk: Buffer) => {
    stderr.push(chunk);
    if (remotePid !== undefined) return;
    remotePid = findRemotePid(Buffer.concat(stderr).toString('latin1'));
    if (remotePid !== undefined && killWhenPidKnown) killRemote(connection, remotePid);
  });
  channel.on('exit', (...args: unknown[]) => {
    const [code, signalName] = args;
    exitCode = typeof code === 'number' ? code : 128 + signalNumber(signalName as string | undefined);
  });
  // Writes racing the close of a channel whose command already exited end up here;
  // the exit code says what happened.
  channel.on('error', () => {});
  const closedChannel = new Promise<void>((resolve) =>
    channel.once('close', () => {
      channelClosed = true;
      resolve();
    }),
  );

  let onAborted: () => void = () => {};
  const aborted = new Promise<void>((resolve) => {
    onAborted = resolve;
  });
  const abort = () => {
    if (remotePid === undefined) killWhenPidKnown = true;
    else killRemote(connection, remotePid);
    channel.close();
    onAborted();
  };
  signal?.addEventListener('abort', abort, { once: true });
  try {
    const fed = feedStdin(
      channel,
      stdin,
      (bytes) => {
        stdinBytes += bytes;
        onBytes?.(stdinBytes);
      },
      () => channelClosed,
    ).catch((error: unknown) => {
      if (channelClosed) return;
      sourceError = error;
      channel.close();
    });
    // On abort, do not wait for the command to die: the kill runs on, we report now.
    await Promise.race([closedChannel, aborted]);
    // A command may exit without reading all its input (`head -c 1`, `cat > /full/disk`):
    // stop reading the source then, as a closed pipe would.
    if (isReadable(stdin) && !stdin.readableEnded) stdin.destroy();
    signal?.throwIfAborted();
    await fed;
    if (sourceError !== undefined) throw sourceError;
    if (exitCode === undefined) {
      if (connection.isClosed()) throw connection.lostError(`'${command}'`);
      // No exit status at all: ssh reports 255 in that case, so do we.
      exitCode = 255;
    }
    const result = execResult(
      command,
      exitCode,
      Buffer.concat(stdout).toString('utf8'),
      stripPidLine(Buffer.concat(stderr).toString('utf8')),
    );
    return { result, stdinBytes };
  } finally {
    signal?.removeEventListener('abort', abort);
  }
}

function openExec(connection: SshConnection, command: string): Promise<ClientChannel> {
  const { client, where } = connection;
  return new Promise((resolve, reject) => {
    if (connection.isClosed()) {
      reject(connection.lostError(`'${command}'`));
      return;
    }
    client.exec(remoteCommandLine(command), (error, channel) => {
      if (error) {
        reject(
          new ApertusError('remote-exec-refused', `${where} refused to run a command: ${error.message}.`, {
            kind: 'operation',
            hint: 'Check MaxSessions and the ForceCommand settings of its sshd.',
            cause: error,
          }),
        );
      } else resolve(channel);
    });
  });
}

/**
 * Kill an aborted command and everything it started. OpenSSH ignores "signal" requests
 * for root sessions ("requires privilege separation"), but sshd starts each command in
 * its own session, so its pid is the process group to kill.
 */
function killRemote(connection: SshConnection, pid: number): void {
  if (connection.isClosed()) return;
  try {
    connection.client.exec(
      `kill -KILL -- -${pid} 2>/dev/null || kill -KILL ${pid} 2>/dev/null`,
      (error, channel) => {
        if (error) return;
        channel.on('error', () => {});
        channel.resume();
        channel.stderr.resume();
        channel.end();
      },
    );
  } catch {}
}

/** Write stdin into the channel with backpressure, then send EOF. */
async function feedStdin(
  channel: ClientChannel,
  stdin: ExecOptions['stdin'],
  onChunk: (bytes: number) => void,
  isClosed: () => boolean,
): Promise<void> {
  if (stdin === undefined) {
    channel.end();
    return;
  }
  if (typeof stdin === 'string' || Buffer.isBuffer(stdin)) {
    const data = typeof stdin === 'string' ? Buffer.from(stdin) : stdin;
    channel.end(data);
    onChunk(data.length);
    return;
  }
  const closedOrDrained = () =>
    new Promise<void>((resolve) => {
      const done = () => {
        channel.removeListener('drain', done);
        channel.removeListener('close', done);
        resolve();
      };
      channel.once('drain', done);
      channel.once('close', done);
    });
  try {
    for await (const chunk of stdin) {
      if (isClosed()) return;
      const data = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      onChunk(data.length);
      channel.write(data);
      // Wait on our own, larger mark rather than the stream's 16 KiB: a drain per 64 KiB
      // read halves throughput, while ssh2 still only sends what the host's window allows.
      if (channel.writableLength >= STDIN_BUFFER_BYTES) await closedOrDrained();
    }
    if (!isClosed()) channel.end();
  } catch (error) {
    throw new ApertusError(
      'upload-source-failed',
      `Reading the data to send failed: ${(error as Error).message}.`,
      {
        kind: 'operation',
        cause: error,
      },
    );
  }
}

function isReadable(stdin: ExecOptions['stdin']): stdin is Readable {
  return stdin !== undefined && typeof stdin !== 'string' && !Buffer.isBuffer(stdin);
}

/**
 * The line sshd runs for `command`: sshd hands it to the user's login shell, which may not
 * be sh, so run it in `sh -c` as the Transport promises; first report the session's pid on
 * stderr (removed again from the result) so an abort can kill the command.
 */
function remoteCommandLine(command: string): string {
  return `printf '${PID_MARKER}%s\\n' "$$" >&2; exec sh -c ${quoteArg(command)}`;
}

function findRemotePid(stderr: string): number | undefined {
  const match = new RegExp(`${PID_MARKER}(\\d+)\\n`).exec(stderr);
  return match ? Number(match[1]) : undefined;
}

function stripPidLine(stderr: string): string {
  return stderr.replace(new RegExp(`${PID_MARKER}\\d+\\n`), '');
}

function signalNumber(name: string | undefined): number {
  const numbers: Record<string, number> = {
    HUP: 1,
    INT: 2,
    QUIT: 3,
    ABRT: 6,
    KILL: 9,
    SEGV: 11,
    PIPE: 13,
    TERM: 15,
  };
  return (name && numbers[name.replace(/^SIG/, '')]) || 127;
}
