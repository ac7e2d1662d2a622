/**
 * An interrupted blob upload resumes over real SSH: the bytes already on the host stay,
 * only the rest travels (read from the bundle file from that offset), and the blob that
 * enters the store is whole. Large enough that the source yields many chunks.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDemoHost, createDemoHost, type DemoHost } from '../../src/core/demo-host/demo-host.js';
import { transferBlobs } from '../../src/core/target/blob-store.js';
import { hostLayout } from '../../src/core/target/layout.js';
import { sshE2eRequirement } from '../helpers/demo-host.js';

const requirement = sshE2eRequirement();

describe.skipIf(!requirement.ok)(`blob upload resume over SSH ${requirement.why}`, () => {
  let work: string;
  let host: DemoHost;
  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-resume-'));
    host = await createDemoHost({ workDir: path.join(work, 'host'), mode: 'netns' });
  });
  afterAll(async () => {
    await host?.teardown();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('sends only the missing bytes of a 24 MiB blob and stores it whole', async () => {
    const content = randomBytes(24 << 20);
    const digest = `sha256:${createHash('sha256').update(content).digest('hex')}`;
    const file = path.join(work, 'blob');
    await writeFile(file, content);
    const layout = hostLayout(host.root);
    await mkdir(layout.blobDir, { recursive: true });
    const kept = 7 * 1024 * 1024 + 123;
    await writeFile(layout.incoming(digest), content.subarray(0, kept));

    const transport = await connectDemoHost(host);
    const progress: number[] = [];
    try {
      const result = await transferBlobs({
        transport,
        layout,
        hashTool: 'openssl',
        uploads: [{ digest, size: content.length, resumeFrom: kept }],
        openBlob: (_digest, start) => createReadStream(file, { start, highWaterMark: 256 << 10 }),
        onProgress: (event) => {
          if (event.bytes) progress.push(event.bytes.done);
        },
      });
      expect(result.bytes).toBe(content.length - kept);
    } finally {
      await transport.close();
    }
    expect(progress.at(-1)).toBe(content.length - kept);
    expect((await readFile(layout.blob(digest))).equals(content)).toBe(true);
  });
});
