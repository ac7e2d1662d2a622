import { type IncomingHttpHeaders, type IncomingMessage, request } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { ApertusError } from '../errors.js';
import type { Transport } from './transport.js';

/**
 * HTTP to services on a host's loopback, spoken through the transport (an SSH channel, or
 * a local socket), so verification needs no port opened on the host's network.
 */
export interface HttpRequestOptions {
  port: number;
  /** As seen from the host. Default 127.0.0.1. */
  host?: string;
  /** Default GET, or POST when there is a body. */
  method?: string;
  /** Path and query, e.g. `/v1/models`. */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Sent as JSON with `content-type: application/json`; instead of `body`. */
  json?: unknown;
  /** For httpRequest: the whole exchange. For httpRequestStream: until the headers arrive. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** HTTPS through the same channel, to a server that must present this certificate. */
  tls?: PinnedTls;
}

/**
 * TLS to a server whose certificate is known exactly (the one install uploaded): the
 * certificate presented must have this SHA-256 fingerprint, whoever signed it, so the
 * operator's CA need not be known here and no other certificate passes.
 */
export interface PinnedTls {
  /** As X509Certificate.fingerprint256 writes it: colon-separated upper-case hex. */
  fingerprint256: string;
  /** SNI sent in the handshake; default none. */
  servername?: string;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface HttpStreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The response body as it arrives (e.g. server-sent events); ends with the exchange. */
  body: Readable;
}

/** One request, the whole response body read as UTF-8. */
export async function httpRequest(transport: Transport, options: HttpRequestOptions): Promise<HttpResponse> {
  return exchange(transport, options, async (response, fail) => {
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of response) chunks.push(chunk as Buffer);
    } catch (error) {
      throw fail(error);
    }
    return {
      status: response.statusCode ?? 0,
      headers: response.headers,
      body: Buffer.concat(chunks).toString('utf8'),
    };
  });
}

/** One request; resolves when the headers arrive, the body streams on (for chat with `stream: true`). */
export async function httpRequestStream(
  transport: Transport,
  options: HttpRequestOptions,
): Promise<HttpStreamResponse> {
  return exchange(
    transport,
    options,
    async (response) => ({ status: response.statusCode ?? 0, headers: response.headers, body: response }),
    { timeoutUntilHeaders: true },
  );
}

async function exchange<T>(
  transport: Transport,
  options: HttpRequestOptions,
  read: (response: IncomingMessage, fail: (error: unknown) => ApertusError) => Promise<T>,
  { timeoutUntilHeaders = false } = {},
): Promise<T> {
  const { port, path, signal, timeoutMs } = options;
  const host = options.host ?? '127.0.0.1';
  signal?.throwIfAborted();
  const payload =
    options.json !== undefined
      ? Buffer.from(JSON.stringify(options.json))
      : options.body
        ? Buffer.from(options.body)
        : undefined;
  const method = options.method ?? (payload ? 'POST' : 'GET');
  const target = `${method} ${options.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}${path} on ${transport.description}`;
  const fail = (error: unknown) =>
    error instanceof ApertusError
      ? error
      : new ApertusError('http-request-failed', `${target} failed: ${(error as Error).message}.`, {
          kind: 'operation',
          hint: `Check that the service runs and listens on ${host}:${port} on the host.`,
          cause: error,
        });

  const deadline = Date.now() + timeoutMs;
  const channel = await withDeadline(transport.connect(port, host), deadline, target, signal);
  adaptForHttp(channel);
  const socket = options.tls
    ? await withDeadline(pinnedTls(channel, options.tls), deadline, target, signal).catch(
        (error: unknown) => {
          channel.destroy();
          throw fail(error);
        },
      )
    : channel;
  // Closing the TLS socket does not close a channel it wraps: free the SSH channel too.
  if (socket !== channel) socket.once('close', () => channel.destroy());

  const headers: Record<string, string> = {
    connection: 'close',
    ...(options.json !== undefined ? { 'content-type': 'application/json' } : {}),
    ...(payload ? { 'content-length': String(payload.length) } : {}),
    ...options.headers,
  };
  const req = request({
    host,
    port,
    method,
    path,
    headers,
    createConnection: () => socket as Socket,
  });
  const timer = setTimeout(
    () => req.destroy(timeoutError(target, timeoutMs)),
    Math.max(0, deadline - Date.now()),
  );
  const onAbort = () => req.destroy(signal?.reason as Error);
  signal?.addEventListener('abort', onAbort, { once: true });
  const cleanup = () => {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  };

  try {
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', reject);
      req.end(payload);
    });
    // One connection per request: free the SSH channel as soon as the exchange is over.
    response.once('close', () => socket.destroy());
    if (timeoutUntilHeaders) cleanup();
    return await read(response, fail);
  } catch (error) {
    socket.destroy();
    signal?.throwIfAborted();
    throw fail(error);
  } finally {
    cleanup();
  }
}

/** The TLS handshake over `channel`; fails unless the server presents the pinned certificate. */
function pinnedTls(channel: Duplex, pin: PinnedTls): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const secure = tlsConnect({
      socket: channel as Socket,
      // The chain is not judged here: the pin below names the one certificate accepted.
      rejectUnauthorized: false,
      ...(pin.servername ? { servername: pin.servername } : {}),
    });
    secure.once('error', reject);
    secure.once('secureConnect', () => {
      const presented = secure.getPeerX509Certificate()?.fingerprint256;
      if (presented !== pin.fingerprint256) {
        secure.destroy();
        reject(
          new Error(
            `the server presented certificate ${presented ?? '(none)'}, not the installed ${pin.fingerprint256}`,
          ),
        );
        return;
      }
      secure.off('error', reject);
      resolve(secure);
    });
  });
}

/** node:http calls these socket methods; an SSH channel is a plain Duplex without them. */
function adaptForHttp(stream: Duplex): void {
  const socket = stream as Duplex & Partial<Record<string, unknown>>;
  const noop = () => socket;
  for (const name of ['setKeepAlive', 'setNoDelay', 'setTimeout', 'ref', 'unref']) {
    if (typeof socket[name] !== 'function') socket[name] = noop;
  }
  if (typeof socket.destroySoon !== 'function') socket.destroySoon = () => stream.destroy();
}

async function withDeadline(
  connecting: Promise<Duplex>,
  deadline: number,
  target: string,
  signal: AbortSignal | undefined,
): Promise<Duplex> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  let gaveUp = false;
  // A connection that opens after we gave up must not hold an SSH channel forever.
  connecting.then(
    (socket) => gaveUp && socket.destroy(),
    () => {},
  );
  try {
    return await Promise.race([
      connecting,
      new Promise<never>((_, reject) => {
        const ms = Math.max(0, deadline - Date.now());
        timer = setTimeout(() => reject(timeoutError(target, ms)), ms);
        onAbort = () => reject(signal?.reason);
        signal?.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
  } catch (error) {
    gaveUp = true;
    throw error;
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

function timeoutError(target: string, timeoutMs: number): ApertusError {
  return new ApertusError('http-timeout', `${target} got no answer within ${timeoutMs} ms.`, {
    kind: 'operation',
    hint: 'The service may still be starting (loading a model takes minutes): check its log on the host, or wait and retry.',
  });
}
