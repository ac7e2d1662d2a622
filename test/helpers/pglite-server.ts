/**
 * A real PostgreSQL with the real pgvector extension for tests: PGlite (Postgres compiled
 * to WebAssembly) with its `vector` extension, served over the Postgres wire protocol by
 * @electric-sql/pglite-socket on a loopback port chosen by the kernel, so the code under
 * test talks to it with the standard `pg` client exactly as to a server.
 *
 * PGlite runs one backend: every connection shares one session, and a transaction on one
 * connection holds the others until it ends. Advisory locks therefore cannot be shown to
 * exclude another backend here; what can be shown is that the SQL that takes them runs.
 */
import type { AddressInfo } from 'node:net';
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

export interface PgliteServer {
  /** A connection URL for `pg`; its password is a marker tests look for in messages. */
  url: string;
  port: number;
  db: PGlite;
  stop(): Promise<void>;
}

export const PGLITE_PASSWORD = 'pw-never-printed-7f3a';

export async function startPgliteServer(): Promise<PgliteServer> {
  const db = await PGlite.create({ extensions: { vector } });
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 16 });
  await server.start();
  // getServerConn() reports the port asked for (0); the listening socket knows the real one.
  const address = (server as unknown as { server: { address(): AddressInfo } }).server.address();
  return {
    url: `postgresql://postgres:${PGLITE_PASSWORD}@127.0.0.1:${address.port}/postgres`,
    port: address.port,
    db,
    async stop() {
      await server.stop();
      await db.close();
    },
  };
}
