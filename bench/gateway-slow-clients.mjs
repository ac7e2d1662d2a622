#!/usr/bin/env node
// Slow clients and a huge body against the gateway: does it keep answering, and how much
// memory does it hold?
//
//   node bench/gateway-slow-clients.mjs [--slow 200] [--seconds 30] [--body-mb 200]
//
// Starts templates/gateway/server.mjs over TLS (a throw-away CA made with openssl) in front
// of a loopback upstream that answers /v1/embeddings, then for --seconds:
//   - --slow TLS connections, half trickling their headers one byte every 2 s (slowloris),
//     half sending full headers and then a 1 MiB body one byte every 2 s;
//   - one client posting a --body-mb body (declared Content-Length) as fast as it can,
//     then the same body chunked (no Content-Length);
//   - a probe every 500 ms: an authenticated POST /v1/embeddings through to the upstream.
// It samples the gateway's RSS from /proc every 250 ms and prints one JSON report: probe
// latencies and failures, the statuses the big bodies got, how many slow connections the
// gateway cut and after how long, and RSS before, peak and after.
//
// Not a test: nothing here is timed against a threshold. Exit 0 unless a probe failed.

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { connect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { keyDigest } from '../templates/gateway/api-keys.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    slow: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '30' },
    'body-mb': { type: 'string', default: '200' },
  },
});
const SLOW = Number(values.slow);
const SECONDS = Number(values.seconds);
const BODY_BYTES = Number(values['body-mb']) * 1024 * 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const run = promisify(execFile);

const dir = await mkdtemp(join(tmpdir(), 'apertus-gateway-bench-'));
const f = (name) => join(dir, name);
await run('openssl', [
  'req',
  '-x509',
  '-newkey',
  'ec',
  '-pkeyopt',
  'ec_paramgen_curve:P-256',
  '-nodes',
  '-days',
  '1',
  '-subj',
  '/CN=bench',
  '-addext',
  'subjectAltName=IP:127.0.0.1',
  '-keyout',
  f('key.pem'),
  '-out',
  f('cert.pem'),
]);
const ca = await readFile(f('cert.pem'));
const key = `apk-${randomBytes(32).toString('base64url')}`;
await writeFile(
  f('keys.json'),
  JSON.stringify({
    format: 'apertus-api-keys',
    formatVersion: 1,
    keys: [{ name: 'bench', sha256: keyDigest(key), scopes: ['admin'], created: new Date().toISOString() }],
  }),
);

const upstream = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        object: 'list',
        data: [{ object: 'embedding', index: 0, embedding: [0.1, 0.2] }],
        model: 'm',
      }),
    );
  });
});
await new Promise((r) => upstream.listen(0, '127.0.0.1', r));

const gateway = spawn(
  process.execPath,
  [
    join(root, 'templates', 'gateway', 'server.mjs'),
    '--listen',
    '127.0.0.1:0',
    '--metrics-port',
    '0',
    '--keys',
    f('keys.json'),
    '--access-log',
    f('access.log'),
    '--tls-cert',
    f('cert.pem'),
    '--tls-key',
    f('key.pem'),
    '--upstream',
    `m=http://127.0.0.1:${upstream.address().port}`,
    '--rate',
    '1000',
    '--burst',
    '1000',
  ],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
let out = '';
gateway.stdout.on('data', (c) => {
  out += c;
});
let port;
for (let i = 0; i < 100 && port === undefined; i++) {
  await sleep(100);
  port = /listening https=127\.0\.0\.1:(\d+)/.exec(out)?.[1];
}
if (port === undefined) throw new Error(`the gateway did not start: ${out}`);
port = Number(port);

const rss = () => {
  try {
    const status = readFileSync(`/proc/${gateway.pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
};

const rssBefore = rss();
let rssPeak = rssBefore;
const sampler = setInterval(() => {
  rssPeak = Math.max(rssPeak, rss());
}, 250);

const tlsSocket = () => connect({ host: '127.0.0.1', port, ca });

// Slow clients: count the ones the gateway cut, and when.
const slow = { opened: 0, cutByGateway: 0, cutAfterMs: [], heldToEnd: 0 };
const stopAt = Date.now() + SECONDS * 1000;
const slowClients = [];
for (let i = 0; i < SLOW; i++) {
  slowClients.push(
    new Promise((resolve) => {
      const started = Date.now();
      const socket = tlsSocket();
      const text =
        i % 2 === 0
          ? `POST /v1/embeddings HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${key}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n`
          : null;
      let sent = 0;
      let timer;
      socket.once('secureConnect', () => {
        slow.opened += 1;
        const headers = `POST /v1/embeddings HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${key}\r\ncontent-length: 1048576\r\n\r\n`;
        if (text === null) socket.write(headers);
        timer = setInterval(() => {
          if (Date.now() > stopAt) {
            slow.heldToEnd += 1;
            clearInterval(timer);
            socket.destroy();
            return;
          }
          if (text !== null) socket.write(text[sent++ % text.length]);
          else socket.write('x');
        }, 2000);
      });
      socket.on('data', () => {});
      socket.once('close', () => {
        clearInterval(timer);
        if (Date.now() <= stopAt) {
          slow.cutByGateway += 1;
          slow.cutAfterMs.push(Date.now() - started);
        }
        resolve();
      });
      socket.on('error', () => {});
    }),
  );
}

// The big bodies: declared length, then chunked.
async function bigBody(chunked) {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = tlsSocket();
    let answer = '';
    let written = 0;
    socket.once('secureConnect', () => {
      socket.write(
        `POST /v1/embeddings HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${key}\r\ncontent-type: application/json\r\n` +
          (chunked ? 'transfer-encoding: chunked\r\n\r\n' : `content-length: ${BODY_BYTES}\r\n\r\n`),
      );
      const chunk = Buffer.alloc(256 * 1024, 0x20);
      const frame = chunked
        ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')])
        : chunk;
      const pump = () => {
        while (written < BODY_BYTES && !socket.destroyed) {
          written += chunk.length;
          if (!socket.write(frame)) return;
        }
      };
      socket.on('drain', pump);
      pump();
    });
    socket.on('data', (d) => {
      answer += d;
    });
    const done = () =>
      resolve({
        chunked,
        status: answer.split('\r\n')[0] || null,
        bytesWritten: written,
        ms: Date.now() - started,
      });
    socket.once('close', done);
    socket.on('error', () => {});
  });
}

// The probe: a request through to the upstream every 500 ms.
const probes = { ok: 0, failed: 0, ms: [] };
const probeLoop = (async () => {
  while (Date.now() < stopAt) {
    const started = Date.now();
    const status = await new Promise((resolve) => {
      const socket = tlsSocket();
      let answer = '';
      socket.once('secureConnect', () => {
        const body = JSON.stringify({ model: 'm', input: 'x' });
        socket.write(
          `POST /v1/embeddings HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${key}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
        );
      });
      socket.on('data', (d) => {
        answer += d;
      });
      socket.once('close', () => resolve(answer.split('\r\n')[0]));
      socket.on('error', () => resolve('error'));
      setTimeout(() => socket.destroy(), 10_000);
    });
    if (status === 'HTTP/1.1 200 OK') probes.ok += 1;
    else probes.failed += 1;
    probes.ms.push(Date.now() - started);
    await sleep(500);
  }
})();

await sleep(3000);
const big = [await bigBody(false), await bigBody(true)];
await probeLoop;
await Promise.all(slowClients);
await sleep(1000);
clearInterval(sampler);
const rssAfter = rss();
const sorted = [...probes.ms].sort((a, b) => a - b);
const pct = (p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const cut = [...slow.cutAfterMs].sort((a, b) => a - b);
const report = {
  slowConnections: { ...slow, cutAfterMs: cut.length ? { min: cut[0], max: cut[cut.length - 1] } : null },
  bigBodies: big,
  probes: {
    ok: probes.ok,
    failed: probes.failed,
    p50Ms: pct(50),
    p99Ms: pct(99),
    maxMs: sorted[sorted.length - 1],
  },
  gatewayRssMiB: {
    before: +(rssBefore / 2 ** 20).toFixed(1),
    peak: +(rssPeak / 2 ** 20).toFixed(1),
    after: +(rssAfter / 2 ** 20).toFixed(1),
  },
};
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
gateway.kill('SIGTERM');
upstream.close();
await new Promise((r) => gateway.once('exit', r));
await rm(dir, { recursive: true, force: true });
process.exit(probes.failed === 0 ? 0 : 1);
