import { existsSync } from 'node:fs';
import type { DemoHost } from '../../src/core/demo-host/demo-host.js';

/**
 * Whether this machine can run the e2e tests that need a real sshd in a network namespace,
 * and if not, why: the skip message says what to change.
 */
export function sshE2eRequirement(): { ok: boolean; why: string } {
  if (process.getuid?.() !== 0) return { ok: false, why: 'not running as root (network namespaces need it)' };
  if (!existsSync('/usr/sbin/sshd'))
    return { ok: false, why: 'no /usr/sbin/sshd (apt-get install openssh-server)' };
  return { ok: true, why: '' };
}

export interface HostHttpServer {
  port: number;
  stop(): void;
}

// Echoes method, path, headers and body as JSON; `/stream` answers in three chunks.
const ECHO_SERVER = `
const http = require('node:http');
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.url === '/stream') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      let n = 0;
      const timer = setInterval(() => {
        res.write('data: ' + n + '\\n\\n');
        if (++n === 3) { clearInterval(timer); res.end(); }
      }, 20);
      return;
    }
    res.writeHead(req.url === '/missing' ? 404 : 200, { 'content-type': 'application/json', 'x-served-by': 'demo-host' });
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() }));
  });
});
server.listen(Number(process.argv[1] ?? 0), '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
`;

/** Start an HTTP echo server on 127.0.0.1 of the host's network (inside its namespace); port 0 picks one. */
export async function startHttpServerOnHost(host: DemoHost, port = 0): Promise<HostHttpServer> {
  const child = host.spawnOnHost([process.execPath, '-e', ECHO_SERVER, String(port)]);
  const listening = await new Promise<number>((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) resolve((JSON.parse(line) as { port: number }).port);
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    child.once('exit', (code) => reject(new Error(`echo server exited with ${code}: ${err}`)));
  });
  return { port: listening, stop: () => child.kill() };
}

/** The flags that point a command at a demo host over SSH, its key already known, and its install root. */
export function hostTargetArgs(host: DemoHost): string[] {
  return [
    '--host',
    host.address as string,
    '-i',
    host.identityFile as string,
    '--known-hosts',
    host.knownHostsFile as string,
    '--root',
    host.root,
  ];
}
