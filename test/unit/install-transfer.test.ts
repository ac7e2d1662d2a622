import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalTransport } from '../../src/core/host/local-transport.js';
import type { Transport } from '../../src/core/host/transport.js';
import { transferBlobs } from '../../src/core/target/blob-store.js';
import { hostLayout } from '../../src/core/target/layout.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'apertus-transfer-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const content = Buffer.from('a blob of the bundle\n'.repeat(5000));
const digest = `sha256:${createHash('sha256').update(content).digest('hex')}`;

async function transfer(root: string, bytes: Buffer, resumeFrom = 0, size = bytes.length) {
  const transport = createLocalTransport();
  const sent: number[] = [];
  try {
    return {
      sent,
      result: await transferBlobs({
        transport,
        layout: hostLayout(root),
        hashTool: 'sha256sum',
        uploads: [{ digest, size, resumeFrom }],
        openBlob: (_digest, start) => Readable.from([bytes.subarray(start)]),
        onProgress: (event) => {
          if (event.bytes) sent.push(event.bytes.done);
        },
      }),
    };
  } finally {
    await transport.close();
  }
}

describe('blob transfer onto a host (local transport)', () => {
  it('puts a verified, read-only blob into the store under its digest', async () => {
    const root = path.join(work, 'ok');
    const { result } = await transfer(root, content);
    expect(result).toMatchObject({ blobs: 1, bytes: content.length });
    const stored = path.join(root, 'blobs', 'sha256', digest.slice(7));
    expect(await readFile(stored)).toEqual(content);
    expect((await stat(stored)).mode & 0o777).toBe(0o444);
  });

  it('refuses a bundle blob that does not hash to its digest as it is read, and leaves nothing behind', async () => {
    const root = path.join(work, 'bad');
    const damaged = Buffer.from(content);
    damaged[100] = (damaged[100] ?? 0) ^ 1;
    await expect(transfer(root, damaged)).rejects.toMatchObject({ code: 'bundle-blob-corrupt' });
    expect(await readdir(path.join(root, 'blobs', 'sha256'))).toEqual([]);
  });

  it('refuses bytes damaged on the way to the host (its own hash differs), and leaves nothing behind', async () => {
    const root = path.join(work, 'bad-link');
    const local = createLocalTransport();
    // A link that flips one bit of the data after the frame's header line.
    let seen = 0;
    const damaging = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        const copy = Buffer.from(chunk);
        const at = 1000 - seen;
        if (at >= 0 && at < copy.length) copy[at] = (copy[at] ?? 0) ^ 1;
        seen += copy.length;
        done(null, copy);
      },
    });
    const transport: Transport = {
      ...local,
      exec: (command, options = {}) =>
        local.exec(command, { ...options, stdin: (options.stdin as Readable).pipe(damaging) }),
    };
    try {
      await expect(
        transferBlobs({
          transport,
          layout: hostLayout(root),
          hashTool: 'sha256sum',
          uploads: [{ digest, size: content.length, resumeFrom: 0 }],
          openBlob: (_digest, start) => Readable.from([content.subarray(start)]),
          onProgress: () => {},
        }),
      ).rejects.toMatchObject({ code: 'blob-corrupt-on-host' });
    } finally {
      await local.close();
    }
    expect(await readdir(path.join(root, 'blobs', 'sha256'))).toEqual([]);
  });

  it('remembers the blobs it hashed for later hosts, and a host still refuses wrong bytes sent unhashed', async () => {
    const hashed = new Set<string>();
    const transport = createLocalTransport();
    const send = (root: string, bytes: Buffer) =>
      transferBlobs({
        transport,
        layout: hostLayout(path.join(work, root)),
        hashTool: 'sha256sum',
        uploads: [{ digest, size: bytes.length, resumeFrom: 0 }],
        openBlob: (_digest, start) => Readable.from([bytes.subarray(start)]),
        hashed,
        onProgress: () => {},
      });
    try {
      await send('first-host', content);
      expect([...hashed]).toEqual([digest]);
      const damaged = Buffer.from(content);
      damaged[7] = (damaged[7] ?? 0) ^ 1;
      await expect(send('later-host', damaged)).rejects.toMatchObject({ code: 'blob-corrupt-on-host' });
    } finally {
      await transport.close();
    }
    expect(await readdir(path.join(work, 'later-host', 'blobs', 'sha256'))).toEqual([]);
  });

  it('the host refuses a frame whose name is not a sha256 hex digest, before it writes anything', async () => {
    const root = path.join(work, 'escape');
    const transport = createLocalTransport();
    try {
      await expect(
        transferBlobs({
          transport,
          layout: hostLayout(root),
          hashTool: 'sha256sum',
          uploads: [{ digest: 'sha256:../../../escaped', size: 1, resumeFrom: 0 }],
          openBlob: () => Readable.from([Buffer.from('x')]),
          onProgress: () => {},
        }),
      ).rejects.toMatchObject({ code: 'upload-failed', message: expect.stringContaining('bad-frame') });
    } finally {
      await transport.close();
    }
    expect(await readdir(path.join(root, 'blobs', 'sha256'))).toEqual([]);
    await expect(stat(path.join(work, 'escaped'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('sends several blobs in one host command, each stored under its digest', async () => {
    const root = path.join(work, 'several');
    const blobs = [content, Buffer.alloc(0), Buffer.from('x'), Buffer.from('second blob\n'.repeat(3000))];
    const byDigest = new Map(blobs.map((b) => [`sha256:${createHash('sha256').update(b).digest('hex')}`, b]));
    const local = createLocalTransport();
    const commands: string[] = [];
    const transport: Transport = {
      ...local,
      exec: (command, options) => {
        commands.push(command);
        return local.exec(command, options);
      },
    };
    try {
      const result = await transferBlobs({
        transport,
        layout: hostLayout(root),
        hashTool: 'sha256sum',
        uploads: [...byDigest].map(([d, b]) => ({ digest: d, size: b.length, resumeFrom: 0 })),
        openBlob: (d, start) => Readable.from([(byDigest.get(d) ?? Buffer.alloc(0)).subarray(start)]),
        onProgress: () => {},
      });
      expect(result).toMatchObject({ blobs: 4, bytes: blobs.reduce((sum, b) => sum + b.length, 0) });
    } finally {
      await local.close();
    }
    expect(commands).toHaveLength(1);
    const store = path.join(root, 'blobs', 'sha256');
    expect((await readdir(store)).sort()).toEqual([...byDigest.keys()].map((d) => d.slice(7)).sort());
    for (const [d, b] of byDigest) expect(await readFile(path.join(store, d.slice(7)))).toEqual(b);
  });

  it('resumes an interrupted upload: only the missing bytes travel', async () => {
    const root = path.join(work, 'resume');
    const store = path.join(root, 'blobs', 'sha256');
    await mkdir(store, { recursive: true });
    const half = Math.floor(content.length / 2);
    await writeFile(path.join(store, `.incoming-${digest.slice(7)}`), content.subarray(0, half));
    const { result } = await transfer(root, content, half);
    expect(result.bytes).toBe(content.length - half);
    expect(await readFile(path.join(store, digest.slice(7)))).toEqual(content);
    expect(await readdir(store)).toEqual([digest.slice(7)]);
  });

  it('keeps what arrived of an upload cut short, and the next transfer resumes from it', async () => {
    const root = path.join(work, 'cut');
    const store = path.join(root, 'blobs', 'sha256');
    const third = Math.floor(content.length / 3);
    // The stream ends early, as when the connection drops: the host keeps the prefix.
    await expect(transfer(root, content.subarray(0, third), 0, content.length)).rejects.toMatchObject({
      code: 'upload-size-mismatch',
    });
    expect(await readFile(path.join(store, `.incoming-${digest.slice(7)}`))).toEqual(
      content.subarray(0, third),
    );
    const { result, sent } = await transfer(root, content, third);
    expect(result.bytes).toBe(content.length - third);
    expect(sent.at(-1)).toBe(content.length - third);
    expect(await readFile(path.join(store, digest.slice(7)))).toEqual(content);
    expect(await readdir(store)).toEqual([digest.slice(7)]);
  });

  it.each(['openssl', 'shasum'] as const)('verifies with %s as well', async (hashTool) => {
    const root = path.join(work, hashTool);
    const transport = createLocalTransport();
    try {
      const has = await transport.exec(`command -v ${hashTool}`, { reject: false });
      if (has.exitCode !== 0) return;
      await transferBlobs({
        transport,
        layout: hostLayout(root),
        hashTool,
        uploads: [{ digest, size: content.length, resumeFrom: 0 }],
        openBlob: (_digest, start) => Readable.from([content.subarray(start)]),
        onProgress: () => {},
      });
      expect(await readFile(path.join(root, 'blobs', 'sha256', digest.slice(7)))).toEqual(content);
    } finally {
      await transport.close();
    }
  });
});
