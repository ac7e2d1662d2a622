import { createServer } from 'node:net';

export interface WatchedPort {
  /** http://127.0.0.1:PORT, for HF_ENDPOINT and the like. */
  url: string;
  /** TCP connections made to the port so far. */
  connections(): number;
  close(): Promise<void>;
}

/**
 * A port that answers nothing and counts who knocks: point an endpoint at it to prove
 * that no request was even attempted (a closed port could not tell).
 */
export async function watchPort(): Promise<WatchedPort> {
  let count = 0;
  const server = createServer((socket) => {
    count++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => count,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
