/**
 * End-to-end runs of bin/apertus.js against a real OpenSSH sshd in a network namespace
 * with no route out: the journeys of DESIGN.md section 1, with real tar files, real
 * signatures and real inference on the generated tiny model.
 */
import { cp, mkdir, mkdtemp, open, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDemoHost, createDemoHost, type DemoHost } from '../../src/core/demo-host/demo-host.js';
import { httpRequest } from '../../src/core/host/http-over-transport.js';
import { openBundle } from '../../src/core/layout/bundle-reader.js';
import { readTxPackets } from '../../src/core/target/egress-counter.js';
import { blobsBeyond } from '../helpers/bundle-blobs.js';
import { hostTargetArgs, sshE2eRequirement, startHttpServerOnHost } from '../helpers/demo-host.js';

const BIN = path.resolve('bin/apertus.js');
const requirement = sshE2eRequirement();

async function apertus(args: string[], options: { cwd?: string } = {}) {
  const result = await execa(process.execPath, [BIN, ...args], {
    reject: false,
    cwd: options.cwd,
    env: { CI: 'true' },
  });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

function json<T = Record<string, unknown>>(stdout: string): T {
  return JSON.parse(stdout) as T;
}

/** Every path under a directory with its size, to prove a refused install changed nothing. */
async function snapshot(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.map((e) => path.join(e.parentPath, e.name)).sort();
}

describe.skipIf(!requirement.ok)(`install over SSH into an air-gapped host ${requirement.why}`, () => {
  let work: string;
  let host: DemoHost;
  let bundlePath: string;
  let publicKey: string;
  let target: string[];
  let brokenBundlePath: string;
  let canaryFailingBundlePath: string;

  /** The demo recipe at another version, changed by `edit` so that its verification fails. */
  async function bundleBrokenRecipe(version: string, edit: (recipe: string) => string): Promise<string> {
    const recipeDir = path.join(work, `recipe-${version}`);
    await cp('bundles/demo', recipeDir, { recursive: true });
    const recipe = await readFile(path.join(recipeDir, 'apertus.yaml'), 'utf8');
    const changed = edit(recipe.replace('version: 0.1.0', `version: ${version}`));
    expect(changed).not.toBe(recipe);
    await writeFile(path.join(recipeDir, 'apertus.yaml'), changed);
    const args = [
      'bundle',
      recipeDir,
      '-o',
      path.join(work, 'out'),
      '--sign',
      path.join(work, 'release.key'),
      '--json',
    ];
    const bundled = await apertus(args);
    expect(bundled.exitCode, bundled.stderr).toBe(0);
    return json<{ path: string }>(bundled.stdout).path;
  }

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-e2e-'));
    host = await createDemoHost({ workDir: path.join(work, 'host'), mode: 'netns' });
    const keys = await apertus(['keys', 'generate', '-o', path.join(work, 'release'), '--json']);
    expect(keys.exitCode).toBe(0);
    publicKey = json<{ publicKeyPath: string }>(keys.stdout).publicKeyPath;
    const bundled = await apertus([
      'bundle',
      'bundles/demo',
      '-o',
      path.join(work, 'out'),
      '--sign',
      path.join(work, 'release.key'),
      '--json',
    ]);
    expect(bundled.exitCode, bundled.stderr).toBe(0);
    bundlePath = json<{ path: string }>(bundled.stdout).path;
    // 0.2.0 expects 65-dimensional embeddings from a model that has 64: it cannot pass.
    brokenBundlePath = await bundleBrokenRecipe('0.2.0', (recipe) =>
      recipe.replace(/(input: air-gapped retrieval\n\s+dimension:) 64/, '$1 65'),
    );
    // 0.3.0 embeds questions with a prefix its passages lack: the canary's own passage no
    // longer scores 1.0 against itself, so the RAG canary fails while everything else passes.
    canaryFailingBundlePath = await bundleBrokenRecipe('0.3.0', (recipe) =>
      recipe.replace(
        '    maxContextChars: 1200\n',
        "    maxContextChars: 1200\n    queryPrefix: 'query: '\n",
      ),
    );
    target = [...hostTargetArgs(host), '--trust-key', publicKey];
  });

  afterAll(async () => {
    await host?.teardown();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('refuses a bundle with one flipped byte in verify and in install, naming the blob, host untouched', async () => {
    const bad = path.join(work, 'flipped.tar');
    await cp(bundlePath, bad);
    const reader = await openBundle(bad);
    const model = [...reader.entries]
      .filter((e) => e.path.startsWith('blobs/'))
      .find((e) => e.size === 273_152);
    await reader.close();
    expect(model, 'the tiny model blob').toBeDefined();
    // The reader gives entry offsets only through reads; find the blob's data by content.
    const tar = await readFile(bad);
    const gguf = await readFile('bundles/demo/model/tiny-llama.gguf');
    const offset = tar.indexOf(gguf.subarray(0, 4096)) + 1000;
    const handle = await open(bad, 'r+');
    await handle.write(Buffer.from([(tar[offset] ?? 0) ^ 0xff]), 0, 1, offset);
    await handle.close();
    const blob = model?.path as string;

    const verified = await apertus(['verify', bad, '--key', publicKey, '--json']);
    expect(verified.exitCode).toBe(1);
    const results = json<{ ok: boolean; results: Array<{ subject: string; status: string }> }>(
      verified.stdout,
    );
    expect(results.ok).toBe(false);
    expect(results.results.filter((r) => r.status !== 'ok')).toEqual([
      expect.objectContaining({ subject: blob, status: 'digest-mismatch' }),
    ]);

    const before = await snapshot(host.root);
    const installed = await apertus(['install', bad, ...target, '--json']);
    expect(installed.exitCode).toBe(1);
    const error = json<{ ok: boolean; error: { code: string; message: string } }>(installed.stdout);
    expect(error.error.code).toBe('bundle-invalid');
    expect(error.error.message).toContain(blob);
    expect(await snapshot(host.root)).toEqual(before);
  });

  it('refuses an unknown host key without --accept-new-host-key, and a changed key always', async () => {
    const empty = path.join(work, 'known_hosts.empty');
    await writeFile(empty, '');
    const args = target.map((a) => (a === host.knownHostsFile ? empty : a));
    const before = await snapshot(host.root);
    const unknown = await apertus(['install', bundlePath, ...args, '--json']);
    expect(unknown.exitCode).toBe(1);
    expect(json<{ error: { code: string; hint: string } }>(unknown.stdout).error).toMatchObject({
      code: 'host-key-unknown',
      hint: expect.stringContaining('--accept-new-host-key'),
    });
    expect(await readFile(empty, 'utf8')).toBe('');

    const changed = path.join(work, 'known_hosts.changed');
    const known = await readFile(host.knownHostsFile as string, 'utf8');
    // Same host, another key: the key of a freshly generated pair.
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(work, 'other')]);
    const otherKey = (await readFile(path.join(work, 'other.pub'), 'utf8')).split(' ').slice(0, 2).join(' ');
    await writeFile(changed, known.replace(/ssh-ed25519 \S+/, otherKey));
    const refused = await apertus([
      'install',
      bundlePath,
      ...target.map((a) => (a === host.knownHostsFile ? changed : a)),
      '--accept-new-host-key',
      '--json',
    ]);
    expect(refused.exitCode).toBe(1);
    expect(json<{ error: { code: string } }>(refused.stdout).error.code).toBe('host-key-changed');
    expect(await snapshot(host.root)).toEqual(before);
  });

  it('refuses to run beside another install holding the host lock, changing nothing', async () => {
    const lock = path.join(host.root, '.install.lock');
    await mkdir(lock, { recursive: true });
    try {
      const before = await snapshot(host.root);
      const busy = await apertus(['install', bundlePath, ...target, '--json']);
      expect(busy.exitCode).toBe(1);
      expect(json<{ error: { code: string; hint: string } }>(busy.stdout).error).toMatchObject({
        code: 'host-busy',
        hint: expect.stringContaining(`rm -r ${lock}`),
      });
      expect(await snapshot(host.root)).toEqual(before);
    } finally {
      await rm(lock, { recursive: true, force: true });
    }
  });

  it('refuses a host whose service port another process holds: at the check, and at activation when skipped', async () => {
    const squatter = await startHttpServerOnHost(host, 18080);
    // A root of its own: a fresh host, where nothing of ours could hold the port.
    const root = `${host.root}-squatted`;
    const args = target.map((a) => (a === host.root ? root : a));
    try {
      const before = await snapshot(root);
      const refused = await apertus(['install', bundlePath, ...args, '--json']);
      expect(refused.exitCode).toBe(1);
      const error = json<{
        error: { code: string; hint: string; details: { check: { results: unknown[] } } };
      }>(refused.stdout).error;
      expect(error.code).toBe('host-check-failed');
      expect(error.hint).toContain('--skip-check ports');
      expect(error.details.check.results).toContainEqual(
        expect.objectContaining({ id: 'ports', status: 'fail' }),
      );
      expect(await snapshot(host.root)).toEqual(before);

      // Skipping the check does not let the squatter answer our health checks.
      const skipped = await apertus(['install', bundlePath, ...args, '--skip-check', 'ports', '--json']);
      expect(skipped.exitCode).toBe(1);
      const failure = json<{
        error: {
          code: string;
          message: string;
          details: { report: { rollback: unknown; preflight: { skipped: unknown[] } } };
        };
      }>(skipped.stdout).error;
      expect(failure.code).toBe('install-verification-failed');
      expect(failure.message).toContain('host-port-in-use');
      expect(failure.details.report.preflight.skipped).toEqual([expect.objectContaining({ id: 'ports' })]);
      expect(failure.details.report.rollback).toEqual({ to: null, healthy: true });
    } finally {
      squatter.stop();
      await rm(root, { recursive: true, force: true });
    }
  });

  it('on a host with no release, a failed verification removes the new release again', async () => {
    const installed = await apertus(['install', brokenBundlePath, ...target, '--json']);
    expect(installed.exitCode).toBe(1);
    const error = json<{ error: { code: string; details: { report: { rollback: unknown } } } }>(
      installed.stdout,
    ).error;
    expect(error.code).toBe('install-verification-failed');
    expect(error.details.report.rollback).toEqual({ to: null, healthy: true });
    await expect(readlink(path.join(host.root, 'current'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readdir(path.join(host.root, 'releases', 'demo'))).toEqual([]);
    // The verified blobs stay in the store: the next try uploads nothing it already sent.
    expect((await readdir(path.join(host.root, 'blobs', 'sha256'))).length).toBeGreaterThan(0);
  });

  it('installs, serves, and a second install of the same bundle uploads 0 bytes', async () => {
    const first = await apertus(['install', bundlePath, ...target, '--count-egress', 'sink0', '--json']);
    expect(first.exitCode, first.stderr).toBe(0);
    const report = json<{
      ok: boolean;
      transfer: { bytesUploaded: number; bytesTotal: number; blobsUploaded: number };
      checks: Array<{
        id: string;
        service: string;
        status: string;
        model?: string;
        metrics?: Record<string, number>;
      }>;
      offline: { interface: string; packets: number } | null;
      path: string;
    }>(first.stdout);
    expect(report.ok).toBe(true);
    // Only what the failed 0.2.0 did not bring already: its config, manifests and SBOM differ.
    const fresh = await blobsBeyond(bundlePath, brokenBundlePath);
    expect(fresh.bytes).toBeGreaterThan(0);
    expect(report.transfer).toMatchObject({ blobsUploaded: fresh.count, bytesUploaded: fresh.bytes });
    expect(report.checks.map((c) => [c.id, c.service, c.status, ...(c.model ? [c.model] : [])])).toEqual([
      ['verify.health', 'llm', 'ok'],
      ['verify.models', 'llm', 'ok'],
      ['verify.chat', 'llm', 'ok'],
      // The demo's LoRA adapter, served by the CPU runtime under its own model id.
      ['verify.models', 'llm', 'ok', 'apertus-demo-tiny-lora'],
      ['verify.chat', 'llm', 'ok', 'apertus-demo-tiny-lora'],
      ['verify.embeddings', 'llm', 'ok'],
      ['verify.health', 'rag', 'ok'],
      ['verify.models', 'rag', 'ok'],
      ['verify.rag-canary', 'rag', 'ok'],
      ['verify.golden', 'llm', 'ok'],
      ['verify.golden', 'rag', 'ok'],
      ['verify.eval', 'rag', 'ok'],
      ['verify.audit', 'rag', 'ok'],
      ['verify.offline', '*', 'ok'],
    ]);
    const chat = report.checks.find((c) => c.id === 'verify.chat');
    expect(chat?.metrics?.completionTokens).toBeGreaterThan(0);
    expect(chat?.metrics?.timeToFirstTokenMs).toBeGreaterThanOrEqual(0);
    const adapterChat = report.checks.find((c) => c.id === 'verify.chat' && c.model !== undefined);
    expect(adapterChat?.metrics?.completionTokens).toBeGreaterThan(0);
    expect(report.offline).toEqual({ interface: 'sink0', packets: 0 });
    expect(JSON.parse(await readFile(report.path, 'utf8'))).toMatchObject({ ok: true });
    expect(await readlink(path.join(host.root, 'current'))).toBe('releases/demo/0.1.0');

    const second = await apertus(['install', bundlePath, ...target, '--json']);
    expect(second.exitCode, second.stderr).toBe(0);
    expect(
      json<{ transfer: { bytesUploaded: number; blobsUploaded: number } }>(second.stdout).transfer,
    ).toMatchObject({
      bytesUploaded: 0,
      blobsUploaded: 0,
    });
  });

  it('rolls back to the previous release, still serving, when the new one fails verification', async () => {
    const installed = await apertus(['install', brokenBundlePath, ...target, '--json']);
    expect(installed.exitCode).toBe(1);
    const error = json<{
      error: { code: string; details: { report: { rollback: unknown; checks: unknown[] } } };
    }>(installed.stdout).error;
    expect(error.code).toBe('install-verification-failed');
    expect(error.details.report.rollback).toEqual({ to: 'releases/demo/0.1.0', healthy: true });
    expect(error.details.report.checks).toContainEqual(
      expect.objectContaining({ id: 'verify.embeddings', status: 'fail' }),
    );
    expect(await readlink(path.join(host.root, 'current'))).toBe('releases/demo/0.1.0');

    const transport = await connectDemoHost(host);
    try {
      const health = await httpRequest(transport, { port: 18080, path: '/health', timeoutMs: 10_000 });
      expect(health.status).toBe(200);
      const models = await httpRequest(transport, { port: 18080, path: '/v1/models', timeoutMs: 10_000 });
      expect(JSON.parse(models.body).data[0].id).toBe('apertus-demo-tiny');
    } finally {
      await transport.close();
    }
  });

  it('rolls back to the previous release, still serving, when the RAG canary fails', async () => {
    const installed = await apertus(['install', canaryFailingBundlePath, ...target, '--json']);
    expect(installed.exitCode).toBe(1);
    const error = json<{
      error: {
        code: string;
        details: { report: { rollback: unknown; checks: Array<{ id: string; status: string }> } };
      };
    }>(installed.stdout).error;
    expect(error.code).toBe('install-verification-failed');
    const failed = error.details.report.checks.filter((c) => c.status === 'fail').map((c) => c.id);
    expect(failed).toEqual(['verify.rag-canary']);
    expect(error.details.report.rollback).toEqual({ to: 'releases/demo/0.1.0', healthy: true });
    expect(await readlink(path.join(host.root, 'current'))).toBe('releases/demo/0.1.0');

    const transport = await connectDemoHost(host);
    try {
      for (const port of [18080, 18090]) {
        const health = await httpRequest(transport, { port, path: '/health', timeoutMs: 10_000 });
        expect(health.status, `port ${port}`).toBe(200);
      }
      // The restored RAG service answers with its sources, on the collection it had.
      const answer = await httpRequest(transport, {
        port: 18090,
        method: 'POST',
        path: '/v1/chat/completions',
        json: { messages: [{ role: 'user', content: 'air gap' }], max_tokens: 2 },
        timeoutMs: 60_000,
      });
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body)).toHaveProperty('sources');
    } finally {
      await transport.close();
    }
  });

  it('chains a record of every install into <root>/audit.log; an edited record is named', async () => {
    const hostArgs = ['--host', host.address as string, '-i', host.identityFile as string];
    const verifyArgs = [...hostArgs, '--known-hosts', host.knownHostsFile as string, '--root', host.root];
    const verified = await apertus(['audit', 'verify', '--installs', ...verifyArgs, '--json']);
    expect(verified.exitCode, verified.stdout).toBe(0);
    const result = json<{ ok: boolean; records: number; logPath: string }>(verified.stdout);
    expect(result).toMatchObject({ ok: true, logPath: path.join(host.root, 'audit.log') });
    const lines = (await readFile(path.join(host.root, 'audit.log'), 'utf8')).trimEnd().split('\n');
    expect(lines).toHaveLength(result.records);
    const records = lines.map(
      (line) =>
        JSON.parse(line) as {
          seq: number;
          method: string;
          endpoint: string;
          status: number;
          documents: string[];
        },
    );
    // The first install named the key the host trusts from then on: its own record, first.
    expect(records.map((r) => r.method)).toEqual(['TRUST-ADD', ...records.slice(1).map(() => 'INSTALL')]);
    // The canary test ran last: 0.3.0 failed and the host went back to 0.1.0.
    expect(records.at(-1)).toMatchObject({
      endpoint: 'demo@0.3.0',
      status: 1,
      documents: [
        expect.stringContaining('reports/'),
        'releases/demo/0.1.0',
        expect.stringMatching(/^signer:[0-9A-F]{16} /),
      ],
    });
    expect(records.some((r) => r.endpoint === 'demo@0.1.0' && r.status === 0)).toBe(true);

    const log = path.join(host.root, 'audit.log');
    const original = await readFile(log, 'utf8');
    try {
      await writeFile(
        log,
        original.replace('"endpoint":"demo@0.1.0","status":0', '"endpoint":"demo@0.1.0","status":1'),
      );
      const broken = await apertus(['audit', 'verify', '--installs', ...verifyArgs, '--json']);
      expect(broken.exitCode).toBe(1);
      const firstOk = records.find((r) => r.endpoint === 'demo@0.1.0' && r.status === 0);
      expect(json<{ ok: boolean; firstBroken: { seq: number } }>(broken.stdout)).toMatchObject({
        ok: false,
        firstBroken: { seq: firstOk?.seq },
      });
      // And install refuses to chain onto a log whose last record was edited.
      await writeFile(
        log,
        original.replace(
          /"status":1,"requestSha256"(?![\s\S]*"status":1,"requestSha256")/,
          '"status":0,"requestSha256"',
        ),
      );
      const refused = await apertus(['install', bundlePath, ...target, '--json']);
      expect(refused.exitCode).toBe(1);
      expect(json<{ error: { code: string } }>(refused.stdout).error.code).toBe('install-audit-damaged');
    } finally {
      await writeFile(log, original);
    }
  });

  it('audit verify over SSH names the one RAG request record edited on the host', async () => {
    const args = ['audit', 'verify', ...hostTargetArgs(host), '--json'];
    const intact = await apertus(args);
    expect(intact.exitCode, intact.stdout).toBe(0);
    const before = json<{ ok: boolean; records: number; logPath: string }>(intact.stdout);
    expect(before).toMatchObject({ ok: true, logPath: path.join(host.root, 'data', 'rag', 'audit.log') });
    // Verification's canary and golden prompts were recorded by every install that got that far.
    expect(before.records).toBeGreaterThanOrEqual(6);

    const log = before.logPath;
    const original = await readFile(log, 'utf8');
    const lines = original.trimEnd().split('\n');
    const victim = 3;
    const record = JSON.parse(lines[victim - 1] as string) as { seq: number; caller: string };
    lines[victim - 1] = (lines[victim - 1] as string).replace(
      `"caller":"${record.caller}"`,
      '"caller":"someone-else"',
    );
    try {
      await writeFile(log, `${lines.join('\n')}\n`);
      const broken = await apertus(args);
      expect(broken.exitCode).toBe(1);
      expect(
        json<{ ok: boolean; records: number; firstBroken: { seq: number; line: number; reason: string } }>(
          broken.stdout,
        ),
      ).toMatchObject({
        ok: false,
        records: victim - 1,
        firstBroken: { seq: record.seq, line: victim, reason: 'hash-mismatch' },
      });
      const text = await apertus(args.filter((a) => a !== '--json'));
      expect(text.stdout).toContain(`first broken record: line ${victim}, seq ${record.seq}: hash-mismatch`);
    } finally {
      await writeFile(log, original);
    }
  });

  it('counts in the sink a packet that tries to leave the host', async () => {
    const transport = await connectDemoHost(host);
    try {
      const before = await readTxPackets(transport, 'sink0');
      const sent = await host.runOnHost([
        process.execPath,
        '-e',
        "const s = require('node:dgram').createSocket('udp4'); s.send('x', 53, '192.0.2.1', () => setTimeout(() => s.close(), 200));",
      ]);
      expect(sent.exitCode, sent.stderr).toBe(0);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await readTxPackets(transport, 'sink0')).toBeGreaterThan(before);
    } finally {
      await transport.close();
    }
  });
});

describe('the demo, as a new user runs it', () => {
  it('prints one JSON document whose steps are all ok', async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), 'apertus-demo-out-'));
    try {
      const demo = await apertus(['demo', '--json', '-o', out]);
      expect(demo.exitCode, demo.stderr).toBe(0);
      const result = json<{
        ok: boolean;
        steps: Array<{ id: string; status: string }>;
        reinstall: { bytesUploaded: number };
        install: { transfer: { bytesUploaded: number }; offline: { packets: number } | null };
        host: { mode: string };
      }>(demo.stdout);
      expect(result.ok).toBe(true);
      expect(result.steps.length).toBeGreaterThan(10);
      expect(result.steps.filter((s) => s.status === 'fail')).toEqual([]);
      // Skipped only where the demo has nothing to do: no images, no wheels, no rollback.
      expect(
        new Set(result.steps.filter((s) => s.status === 'skip').map((s) => s.id.replace(/^re/, ''))),
      ).toEqual(new Set(['install.images', 'install.wheels', 'install.rollback']));
      const verification = [
        'install.verify.health',
        'install.verify.models',
        'install.verify.chat',
        'install.verify.embeddings',
        'install.verify.rag-canary',
        'install.verify.golden',
        'install.verify.eval',
        'install.verify.audit',
        ...(requirement.ok ? ['install.verify.offline'] : []),
      ];
      for (const id of ['bundle', 'verify', ...verification, 'teardown']) {
        expect(result.steps.find((s) => s.id === id)?.status, id).toBe('ok');
      }
      expect(result.install.transfer.bytesUploaded).toBeGreaterThan(0);
      expect(result.reinstall.bytesUploaded).toBe(0);
      if (requirement.ok) {
        expect(result.host.mode).toBe('netns');
        expect(result.steps.map((s) => s.id)).toContain('install.verify.offline');
        expect(result.install.offline).toEqual({ interface: 'sink0', packets: 0 });
      }
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
