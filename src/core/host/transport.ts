import type { Duplex, Readable } from 'node:stream';

/**
 * The one interface between the installer and a host, over SSH (ssh2) or local.
 * Results have execa's shape so callers handle both transports alike (STYLE.md 11).
 */
export interface ExecResult {
  command: string;
  exitCode: number;
  stdout: string;
  stderr: string;
  failed: boolean;
}

export interface ExecOptions {
  /** Bytes or a stream written to the command's stdin, then closed. */
  stdin?: string | Buffer | Readable;
  signal?: AbortSignal;
  /** Reject with ApertusError('remote-command-failed') when the exit code is not 0. Default true. */
  reject?: boolean;
  /** Sees stdout as it arrives (it is still collected for the result): for commands that report before they end. */
  onStdout?: (chunk: Buffer) => void;
}

export interface UploadOptions {
  size: number;
  signal?: AbortSignal;
  onBytes?: (done: number) => void;
}

export interface Transport {
  /** 'ssh root@169.254.10.2:22' or 'local'. */
  readonly description: string;
  /** Run a command line through `sh -c` on the host. Build it with `shellQuote`, never by hand. */
  exec(command: string, options?: ExecOptions): Promise<ExecResult>;
  /** Stream `source` into `remotePath` on the host (created or truncated). */
  upload(source: Readable, remotePath: string, options: UploadOptions): Promise<void>;
  /** A TCP connection to `host:port` as seen from the host (ssh2 forwardOut, or net.connect locally). */
  connect(port: number, host?: string): Promise<Duplex>;
  close(): Promise<void>;
}
