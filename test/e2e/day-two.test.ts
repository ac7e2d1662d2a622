/**
 * Day two on a real air-gapped host (sshd in a network namespace with no route out):
 * `apertus status`, `rollback`, `prune` and `uninstall` on what `apertus install` left there,
 * run as bin/apertus.js with real bundles, real services and the host's real audit log. On the
 * same host: the demo's evaluation set run by each install and by `apertus eval
 * --compare`, a release below its eval threshold rolled back, and a PDF and a DOCX sent
 * with `apertus rag ingest --host`, the RAG answer citing the PDF's page. The model's
 * weights are random: answers are never compared, retrieval is.
 */
import { cp, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatEvalReport } from '../../src/cli/commands/eval.js';
import { connectDemoHost, createDemoHost, type DemoHost } from '../../src/core/demo-host/demo-host.js';
import { httpRequest } from '../../src/core/host/http-over-transport.js';
import type { EvalReport } from '../../src/core/operations/eval.js';
import type { InstallReport } from '../../src/core/operations/install-report.js';
import type { PruneReport } from '../../src/core/operations/prune.js';
import type { RagIngestResult } from '../../src/core/operations/rag-ingest.js';
import type { RollbackReport } from '../../src/core/operations/rollback.js';
import type { HostStatus } from '../../src/core/operations/status.js';
import type { UninstallReport } from '../../src/core/operations/uninstall.js';
import { hostTargetArgs, sshE2eRequirement, startHttpServerOnHost } from '../helpers/demo-host.js';
import { writeDocx, writeTextPdf } from '../helpers/office-files.js';

const BIN = path.resolve('bin/apertus.js');
const requirement = sshE2eRequirement();

async function apertus(args: string[]) {
  const result = await execa(process.execPath, [BIN, ...args], { reject: false, env: { CI: 'true' } });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

function json<T>(stdout: string): T {
  return JSON.parse(stdout) as T;
}

interface AuditLine {
  seq: number;
  method: string;
  endpoint: string;
  status: number;
  documents: string[];
}

describe.skipIf(!requirement.ok)(`status and rollback on an air-gapped host ${requirement.why}`, () => {
  let work: string;
  let host: DemoHost;
  let target: string[];
  let bundle010: string;
  let bundle020: string;
  let bundle030: string;
  let bundle090: string;

  async function auditRecords(): Promise<AuditLine[]> {
    const text = await readFile(path.join(host.root, 'audit.log'), 'utf8');
    return text
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as AuditLine);
  }

  /** Every path under the root with the bytes of the files a refused rollback must not touch. */
  async function hostFiles(): Promise<{ paths: string[]; state: string; audit: string; current: string }> {
    const entries = await readdir(host.root, { recursive: true, withFileTypes: true });
    return {
      paths: entries.map((e) => path.join(e.parentPath, e.name)).sort(),
      state: await readFile(path.join(host.root, 'state.json'), 'utf8'),
      audit: await readFile(path.join(host.root, 'audit.log'), 'utf8'),
      current: await readlink(path.join(host.root, 'current')),
    };
  }

  async function healthFromHost(ports: number[]): Promise<number[]> {
    const transport = await connectDemoHost(host);
    try {
      const statuses: number[] = [];
      for (const port of ports) {
        statuses.push((await httpRequest(transport, { port, path: '/health', timeoutMs: 10_000 })).status);
      }
      return statuses;
    } finally {
      await transport.close();
    }
  }

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-day-two-'));
    host = await createDemoHost({ workDir: path.join(work, 'host'), mode: 'netns' });
    target = hostTargetArgs(host);
    bundle010 = await bundleRecipe('bundles/demo', 'out-0.1.0');
    // 0.2.0: another version, chat prompt and model port, so that a squatter can hold a
    // port only 0.2.0 uses while 0.1.0 serves.
    const recipeDir = path.join(work, 'recipe-0.2.0');
    await cp('bundles/demo', recipeDir, { recursive: true });
    const recipe = await readFile(path.join(recipeDir, 'apertus.yaml'), 'utf8');
    const changed = recipe
      .replace('version: 0.1.0', 'version: 0.2.0')
      .replace('prompt: Say hello to the air gap.', 'prompt: Greet the operators of day two.')
      .replace('port: 18080', 'port: 18081');
    expect(changed.match(/0\.2\.0|day two|18081/g)).toHaveLength(3);
    await writeFile(path.join(recipeDir, 'apertus.yaml'), changed);
    bundle020 = await bundleRecipe(recipeDir, 'out-0.2.0');
    // 0.3.0: 0.1.0's services under another version, for prune to have a release to remove.
    const recipe030 = path.join(work, 'recipe-0.3.0');
    await cp('bundles/demo', recipe030, { recursive: true });
    await writeFile(path.join(recipe030, 'apertus.yaml'), recipe.replace('version: 0.1.0', 'version: 0.3.0'));
    bundle030 = await bundleRecipe(recipe030, 'out-0.3.0');
    // 0.9.0: no answer over SSH comes back within 1 ms, so its evaluation cannot pass.
    const impossibleDir = path.join(work, 'recipe-0.9.0');
    await cp('bundles/demo', impossibleDir, { recursive: true });
    const demo = await readFile(path.join(impossibleDir, 'apertus.yaml'), 'utf8');
    const impossible = demo
      .replace('version: 0.1.0', 'version: 0.9.0')
      .replace('latencyP95Ms: 30000', 'latencyP95Ms: 1');
    expect(impossible.match(/0\.9\.0|latencyP95Ms: 1$/gm)).toHaveLength(2);
    await writeFile(path.join(impossibleDir, 'apertus.yaml'), impossible);
    bundle090 = await bundleRecipe(impossibleDir, 'out-0.9.0');
  });

  async function bundleRecipe(recipeDir: string, out: string): Promise<string> {
    await mkdir(path.join(work, out), { recursive: true });
    const bundled = await apertus(['bundle', recipeDir, '-o', path.join(work, out), '--no-cli', '--json']);
    expect(bundled.exitCode, bundled.stderr).toBe(0);
    return json<{ path: string }>(bundled.stdout).path;
  }

  afterAll(async () => {
    await host?.teardown();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('status on a fresh host says nothing is installed, exit 0', async () => {
    const status = await apertus(['status', ...target, '--json']);
    expect(status.exitCode, status.stderr).toBe(0);
    expect(json<HostStatus>(status.stdout)).toMatchObject({
      ok: true,
      installed: false,
      current: null,
      previous: null,
      releases: [],
      services: [],
      blobs: { count: 0 },
      lastAudit: null,
      lock: { held: false, holder: null },
    });
    const text = await apertus(['status', ...target]);
    expect(text.exitCode).toBe(0);
    expect(text.stdout).toContain('Nothing installed');

    const rollback = await apertus(['rollback', ...target, '--json']);
    expect(rollback.exitCode).toBe(1);
    expect(json<{ error: { code: string } }>(rollback.stdout).error.code).toBe('nothing-installed');
  });

  it('after installs of 0.1.0 and 0.2.0, status shows 0.2.0 current with both services answering', async () => {
    for (const [version, bundle] of [
      ['0.1.0', bundle010],
      ['0.2.0', bundle020],
    ] as const) {
      const installed = await apertus(['install', bundle, ...target, '--allow-unsigned', '--json']);
      expect(installed.exitCode, installed.stdout + installed.stderr).toBe(0);
      // The demo's evaluation set ran after verification, within its thresholds.
      const report = json<InstallReport>(installed.stdout);
      expect(report.eval).toMatchObject({ ok: true, evaluatedRelease: `releases/demo/${version}`, k: 3 });
      const set = report.eval?.sets[0];
      expect(set?.name).toBe('hospital');
      expect(set?.cases).toHaveLength(8);
      // Its notes are found by their words even with random weights, above chance (hit@3 0.5, MRR 0.31).
      expect(set?.metrics.hitAtK).toBeGreaterThanOrEqual(0.85);
      expect(set?.metrics.mrr).toBeGreaterThanOrEqual(0.6);
      expect(set?.metrics.accuracy).toBe(1);
      expect(set?.metrics.latencyP95Ms).toBeGreaterThan(0);
      expect(set?.metrics.tokensPerSecond).toBeGreaterThan(0);
      expect(report.checks.filter((c) => c.id === 'verify.eval')).toEqual([
        expect.objectContaining({ service: 'rag', status: 'ok', detail: expect.stringContaining('hit@3') }),
      ]);
    }
    const result = await apertus(['status', ...target, '--json']);
    expect(result.exitCode, result.stderr).toBe(0);
    const status = json<HostStatus>(result.stdout);
    expect(status).toMatchObject({
      ok: true,
      installed: true,
      current: {
        name: 'demo',
        version: '0.2.0',
        release: 'releases/demo/0.2.0',
        manifestDigest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
        report: expect.stringMatching(new RegExp(`^${path.join(host.root, 'reports')}/\\d{6}-install-`)),
      },
      previous: { release: 'releases/demo/0.1.0', version: '0.1.0', present: true },
      lastAudit: { seq: 2, method: 'INSTALL', endpoint: 'demo@0.2.0', status: 0, sound: true },
      lock: { held: false, holder: null },
    });
    expect(status.services.map((s) => [s.name, s.port, s.health, s.adapterIds])).toEqual([
      ['llm', 18081, 'ok', ['apertus-demo-tiny-lora']],
      ['rag', 18090, 'ok', []],
    ]);
    expect(status.releases.map((r) => [r.version, r.current])).toEqual([
      ['0.1.0', false],
      ['0.2.0', true],
    ]);
    expect(status.releases.every((r) => r.diskBytes > 0)).toBe(true);
    const blobs = await readdir(path.join(host.root, 'blobs', 'sha256'));
    expect(status.blobs.count).toBe(blobs.filter((b) => !b.startsWith('.')).length);
    expect(status.blobs.diskBytes).toBeGreaterThan(0);

    const text = await apertus(['status', ...target]);
    expect(text.exitCode).toBe(0);
    expect(text.stdout).toContain('demo 0.2.0 is current');
    expect(text.stdout).toMatch(/llm\s+llamacpp\s+18081\s+ok/);
  });

  it('eval --compare measures 0.2.0 now beside 0.1.0 as stored at its install, and records an EVAL', async () => {
    const result = await apertus(['eval', ...target, '--compare', '--json']);
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    const report = json<EvalReport>(result.stdout);
    expect(report.current).toMatchObject({
      ok: true,
      version: '0.2.0',
      evaluatedRelease: 'releases/demo/0.2.0',
    });
    expect(report.previous).toMatchObject({
      release: 'releases/demo/0.1.0',
      stored: true,
      report: expect.stringMatching(/000001-install-\d{8}T\d{6}Z\.json$/),
      run: { version: '0.1.0', evaluatedRelease: 'releases/demo/0.1.0' },
    });
    expect(Date.parse(report.previous?.run?.measuredAt ?? '')).toBeLessThan(
      Date.parse(report.current.measuredAt),
    );
    // The random model's embeddings are deterministic: the same set ranks the same in both releases.
    expect(report.current.sets[0]?.metrics.mrr).toBe(report.previous?.run?.sets[0]?.metrics.mrr);
    // The set's own notes were removed after the run.
    const transport = await connectDemoHost(host);
    try {
      const listed = await httpRequest(transport, { port: 18090, path: '/v1/documents', timeoutMs: 10_000 });
      expect(JSON.parse(listed.body).data).toEqual([]);
    } finally {
      await transport.close();
    }
    expect(JSON.parse(await readFile(report.path, 'utf8'))).toEqual(report);
    expect((await auditRecords()).at(-1)).toMatchObject({
      seq: 3,
      method: 'EVAL',
      endpoint: 'demo@0.2.0',
      status: 0,
    });
    // What the command prints without --json: both releases side by side.
    const text = formatEvalReport(report);
    expect(text).toContain('demo 0.2.0 (current, measured now)');
    expect(text).toMatch(/demo 0\.1\.0 \(previous, stored \d{4}-\d\d-\d\dT/);
    expect(text).toMatch(/^MRR\s+\d(\.\d+)?\s+\d(\.\d+)?$/m);
    expect(text).toMatch(/^latency p95\s+\d+ ms\s+\d+ ms$/m);

    const unknown = await apertus(['eval', ...target, '--set', 'nope', '--json']);
    expect(unknown.exitCode).toBe(2);
    expect(json<{ error: unknown }>(unknown.stdout).error).toMatchObject({
      code: 'eval-set-unknown',
      hint: 'Its sets: hospital.',
    });
  });

  it('rolls back a release below its eval threshold, naming metric, value and threshold', async () => {
    const failed = await apertus(['install', bundle090, ...target, '--allow-unsigned', '--json']);
    expect(failed.exitCode, failed.stderr).toBe(1);
    const { error } = json<{ error: { code: string; message: string; details: { report: InstallReport } } }>(
      failed.stdout,
    );
    expect(error.code).toBe('install-verification-failed');
    expect(error.message).toMatch(
      /verify\.eval \(rag\): set hospital: latencyP95Ms \d+ is above the threshold 1/,
    );
    expect(error.message).toContain('Rolled back to releases/demo/0.2.0');
    expect(error.details.report).toMatchObject({
      ok: false,
      rollback: { to: 'releases/demo/0.2.0', healthy: true },
      eval: { ok: false, sets: [{ misses: [{ metric: 'latencyP95Ms', threshold: 1, bound: 'max' }] }] },
    });
    expect(await readlink(path.join(host.root, 'current'))).toBe('releases/demo/0.2.0');
    expect(await healthFromHost([18081, 18090])).toEqual([200, 200]);
    expect((await auditRecords()).at(-1)).toMatchObject({
      seq: 4,
      method: 'INSTALL',
      endpoint: 'demo@0.9.0',
      status: 1,
    });
  });

  /** An inventory of this one host, as an operator would write it. */
  async function writeInventory(): Promise<string> {
    const address = host.address as string;
    const [user, rest = ''] = address.split('@');
    const inventory = path.join(work, 'hosts.yaml');
    await writeFile(
      inventory,
      [
        'apiVersion: apertus.dev/v1',
        'kind: Inventory',
        'hosts:',
        '  - name: day-two',
        `    address: ${rest.slice(0, rest.lastIndexOf(':'))}`,
        `    user: ${user}`,
        `    port: ${rest.slice(rest.lastIndexOf(':') + 1)}`,
        `    identity: ${host.identityFile}`,
        `    knownHosts: ${host.knownHostsFile}`,
        `    root: ${host.root}`,
        '',
      ].join('\n'),
    );
    return inventory;
  }

  it('ingests a PDF and a DOCX with rag ingest --host; the RAG answer cites the PDF page that holds it', async () => {
    const docs = path.join(work, 'documents');
    await mkdir(docs, { recursive: true });
    const pdf = await writeTextPdf(
      [
        ['Ward handbook', 'Shift handover happens at seven in the morning and at seven in the evening.'],
        ['Medication', 'Heparin for the night is given at ten in the evening by the charge nurse.'],
      ],
      'Ward handbook',
    );
    await writeFile(path.join(docs, 'ward-handbook.pdf'), pdf);
    await writeFile(
      path.join(docs, 'visitor-guide.docx'),
      writeDocx([
        { heading: 1, text: 'Parking' },
        { text: 'Visitors park in the north car park; the first hour is free.' },
      ]),
    );
    const ingested = await apertus(['rag', 'ingest', ...target, docs, '--json']);
    expect(ingested.exitCode, ingested.stdout + ingested.stderr).toBe(0);
    const result = json<RagIngestResult>(ingested.stdout);
    expect(result.summary).toEqual({ ingested: 2, replaced: 0, skipped: 0, failed: 0 });
    expect(result.documents.map((d) => [d.id, d.format, d.chunks])).toEqual([
      ['visitor-guide.docx', 'docx', 1],
      ['ward-handbook.pdf', 'pdf', 2],
    ]);
    // The same documents through an inventory: this host already holds them, unchanged.
    const fleet = await apertus(['rag', 'ingest', '--inventory', await writeInventory(), docs, '--json']);
    expect(fleet.exitCode, fleet.stdout + fleet.stderr).toBe(0);
    expect(
      json<{ ok: boolean; hosts: Array<{ host: string; result: RagIngestResult }> }>(fleet.stdout),
    ).toMatchObject({
      ok: true,
      hosts: [{ host: 'day-two', result: { summary: { ingested: 0, replaced: 0, skipped: 2, failed: 0 } } }],
    });

    const transport = await connectDemoHost(host);
    try {
      // Random weights embed a text by its words: the question shares page 2's words, not page 1's.
      const chat = await httpRequest(transport, {
        port: 18090,
        path: '/v1/chat/completions',
        json: {
          messages: [
            { role: 'user', content: 'Heparin for the night is given by the charge nurse: at what time?' },
          ],
          max_tokens: 8,
          temperature: 0,
        },
        timeoutMs: 60_000,
      });
      expect(chat.status, chat.body).toBe(200);
      const answer = JSON.parse(chat.body) as {
        choices: Array<{ message: { content: string } }>;
        sources: Array<{ index: number; document: string; page: number | null; section: string | null }>;
      };
      expect(answer.choices[0]?.message.content).toMatch(/\S/);
      expect(answer.sources[0]).toMatchObject({ index: 1, document: 'ward-handbook.pdf', page: 2 });
      const parking = await httpRequest(transport, {
        port: 18090,
        path: '/v1/query',
        json: { query: 'visitors park in the north car park', top_k: 3 },
        timeoutMs: 60_000,
      });
      expect(JSON.parse(parking.body).data[0]).toMatchObject({
        document: 'visitor-guide.docx',
        section: 'Parking',
        page: null,
      });
    } finally {
      await transport.close();
    }
  });

  it('rollback goes back to 0.1.0, serving, with a report, state.json and a ROLLBACK audit record', async () => {
    const result = await apertus(['rollback', ...target, '--json']);
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    const report = json<RollbackReport>(result.stdout);
    expect(report).toMatchObject({
      ok: true,
      from: { version: '0.2.0', release: 'releases/demo/0.2.0' },
      to: { version: '0.1.0', release: 'releases/demo/0.1.0' },
      activateError: null,
      restored: null,
      current: 'releases/demo/0.1.0',
    });
    // Each model id listed again, the adapter's too.
    expect(report.checks.map((c) => [c.id, c.service, c.status, c.model])).toEqual([
      ['verify.health', 'llm', 'ok', undefined],
      ['verify.models', 'llm', 'ok', undefined],
      ['verify.models', 'llm', 'ok', 'apertus-demo-tiny-lora'],
      ['verify.health', 'rag', 'ok', undefined],
      ['verify.models', 'rag', 'ok', undefined],
    ]);
    // Named by its audit record, never by bundle metadata.
    expect(path.basename(report.path)).toMatch(/^000005-rollback-\d{8}T\d{6}Z\.json$/);
    expect(JSON.parse(await readFile(report.path, 'utf8'))).toEqual(report);
    expect(await readlink(path.join(host.root, 'current'))).toBe('releases/demo/0.1.0');
    expect(await healthFromHost([18080, 18090])).toEqual([200, 200]);
    // 0.2.0's model server is stopped.
    await expect(healthFromHost([18081])).rejects.toThrow();

    const state = JSON.parse(await readFile(path.join(host.root, 'state.json'), 'utf8'));
    expect(state).toMatchObject({
      current: { version: '0.1.0', release: 'releases/demo/0.1.0', report: report.path },
      previous: 'releases/demo/0.2.0',
    });

    const status = json<HostStatus>((await apertus(['status', ...target, '--json'])).stdout);
    expect(status).toMatchObject({
      ok: true,
      current: { version: '0.1.0', report: report.path },
      previous: { version: '0.2.0' },
      lastAudit: { seq: 5, method: 'ROLLBACK', endpoint: 'demo@0.1.0', status: 0, sound: true },
    });
    expect(status.services.map((s) => [s.port, s.health])).toEqual([
      [18080, 'ok'],
      [18090, 'ok'],
    ]);

    const verified = await apertus(['audit', 'verify', '--installs', ...target, '--json']);
    expect(verified.exitCode, verified.stdout).toBe(0);
    expect(json<{ ok: boolean; records: number }>(verified.stdout)).toMatchObject({ ok: true, records: 5 });
    expect((await auditRecords()).at(-1)).toMatchObject({
      method: 'ROLLBACK',
      endpoint: 'demo@0.1.0',
      status: 0,
      documents: [report.path, 'releases/demo/0.1.0'],
    });
  });

  it('refuses --to a version not on the host, and a held lock, leaving the host unchanged', async () => {
    const before = await hostFiles();
    const missing = await apertus(['rollback', ...target, '--to', '9.9.9', '--json']);
    expect(missing.exitCode).toBe(2);
    const error = json<{ error: { code: string; message: string; hint: string } }>(missing.stdout).error;
    expect(error.code).toBe('rollback-target-missing');
    expect(error.message).toContain('9.9.9');
    expect(error.hint).toContain('0.2.0');
    expect(await hostFiles()).toEqual(before);

    // A lock as an older apertus (or a person) left it: it names no holder whose process could be judged.
    const lock = path.join(host.root, '.install.lock');
    await mkdir(lock);
    await writeFile(path.join(lock, 'holder'), 'apertus install of demo 0.3.0 by ops@bastion\n');
    try {
      const busy = await apertus(['rollback', ...target, '--json']);
      expect(busy.exitCode).toBe(1);
      expect(json<{ error: { code: string; hint: string } }>(busy.stdout).error).toMatchObject({
        code: 'host-busy',
        hint: expect.stringContaining(`rm -r ${lock}`),
      });
      const status = json<HostStatus>((await apertus(['status', ...target, '--json'])).stdout);
      expect(status.lock).toEqual({ held: true, holder: null, stale: null, description: null });
      expect(status.warnings).toContain(
        `${lock} names no holder: remove it if no apertus command is running`,
      );
    } finally {
      await rm(lock, { recursive: true, force: true });
    }
    expect(await hostFiles()).toEqual(before);
    expect(await healthFromHost([18080, 18090])).toEqual([200, 200]);
  });

  it('when the target does not come up, restores the release that was current, serving', async () => {
    // Something that is not ours holds 0.2.0's model port: its services cannot start.
    const squatter = await startHttpServerOnHost(host, 18081);
    try {
      const result = await apertus(['rollback', ...target, '--to', '0.2.0', '--json']);
      expect(result.exitCode).toBe(1);
      const error = json<{ error: { code: string; message: string; details: { report: RollbackReport } } }>(
        result.stdout,
      ).error;
      expect(error.code).toBe('rollback-verification-failed');
      expect(error.message).toContain('host-port-in-use');
      expect(error.message).toContain('Restored releases/demo/0.1.0');
      expect(error.details.report).toMatchObject({
        ok: false,
        restored: { to: 'releases/demo/0.1.0', healthy: true },
        current: 'releases/demo/0.1.0',
      });
    } finally {
      squatter.stop();
    }
    expect(await readlink(path.join(host.root, 'current'))).toBe('releases/demo/0.1.0');
    expect(await healthFromHost([18080, 18090])).toEqual([200, 200]);
    const state = JSON.parse(await readFile(path.join(host.root, 'state.json'), 'utf8'));
    expect(state).toMatchObject({ current: { version: '0.1.0' }, previous: 'releases/demo/0.2.0' });

    const verified = await apertus(['audit', 'verify', '--installs', ...target, '--json']);
    expect(verified.exitCode, verified.stdout).toBe(0);
    expect((await auditRecords()).at(-1)).toMatchObject({
      seq: 6,
      method: 'ROLLBACK',
      endpoint: 'demo@0.2.0',
      status: 1,
      documents: [expect.stringContaining('rollback-'), 'releases/demo/0.1.0'],
    });
  });

  it('rollback --to 0.2.0 in plain text: steps on stderr, the outcome on stdout', async () => {
    const result = await apertus(['rollback', ...target, '--to', '0.2.0']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain('Rolled back to demo 0.2.0');
    expect(result.stdout).toContain('(from 0.1.0)');
    expect(result.stdout).toMatch(/ok\s+verify\.models llm: apertus-demo-tiny listed/);
    expect(result.stderr).toContain('Stop current services');
    expect(result.stderr).toContain('current -> releases/demo/0.2.0');
    expect(await readlink(path.join(host.root, 'current'))).toBe('releases/demo/0.2.0');
    expect(await healthFromHost([18081, 18090])).toEqual([200, 200]);
  });

  it('status exits 1 when a service of the current release does not answer', async () => {
    const transport = await connectDemoHost(host);
    try {
      // SIGTERM to the supervisor stops the service for good (it restarts only a child that exits).
      await transport.exec(`kill $(cat ${path.join(host.root, 'run', 'rag.pid')})`);
    } finally {
      await transport.close();
    }
    const result = await apertus(['status', ...target, '--json']);
    expect(result.exitCode).toBe(1);
    const status = json<HostStatus>(result.stdout);
    expect(status.ok).toBe(false);
    expect(status.current?.version).toBe('0.2.0');
    expect(status.services.map((s) => [s.name, s.health])).toEqual([
      ['llm', 'ok'],
      ['rag', 'fail'],
    ]);
    const text = await apertus(['status', ...target]);
    expect(text.exitCode).toBe(1);
    expect(text.stdout).toMatch(/rag\s+rag\s+18090\s+DOWN/);
  });

  /** The blobs a release's release.json names. */
  async function releaseBlobs(version: string): Promise<string[]> {
    const record = JSON.parse(
      await readFile(path.join(host.root, 'releases/demo', version, 'release.json'), 'utf8'),
    );
    return record.blobs as string[];
  }

  async function storeBlobs(): Promise<string[]> {
    const names = await readdir(path.join(host.root, 'blobs', 'sha256'));
    return names.filter((n) => !n.startsWith('.')).map((n) => `sha256:${n}`);
  }

  const exists = (file: string) =>
    stat(file).then(
      () => true,
      () => false,
    );

  it('prune --dry-run lists, --keep 1 removes the oldest release and the blobs only it named', async () => {
    const installed = await apertus(['install', bundle030, ...target, '--allow-unsigned', '--json']);
    expect(installed.exitCode, installed.stdout + installed.stderr).toBe(0);
    // Each release records the blobs of its bundle; 0.1.0 has some no other release names.
    const [b010, b020, b030] = await Promise.all(['0.1.0', '0.2.0', '0.3.0'].map(releaseBlobs));
    // 0.9.0, which failed its evaluation and was put back, is staged too: older than 0.3.0.
    const b090 = await releaseBlobs('0.9.0');
    const only010 = (b010 as string[]).filter((d) => !b020?.includes(d) && !b030?.includes(d));
    expect(only010.length).toBeGreaterThan(0);
    const removable = [...new Set([...only010, ...b090])].filter(
      (d) => !b020?.includes(d) && !b030?.includes(d),
    );
    const store = await storeBlobs();
    expect(store).toEqual(expect.arrayContaining([...(b010 ?? []), ...(b020 ?? []), ...(b030 ?? [])]));

    const before = await hostFiles();
    const dry = await apertus(['prune', ...target, '--keep', '1', '--dry-run', '--json']);
    expect(dry.exitCode, dry.stdout + dry.stderr).toBe(0);
    const plan = json<PruneReport>(dry.stdout);
    expect(plan).toMatchObject({
      ok: true,
      dryRun: true,
      path: null,
      current: 'releases/demo/0.3.0',
      previous: 'releases/demo/0.2.0',
    });
    expect(plan.plan.releases).toEqual([
      { release: 'releases/demo/0.1.0', action: 'remove', why: 'older' },
      { release: 'releases/demo/0.2.0', action: 'keep', why: ['previous'] },
      { release: 'releases/demo/0.3.0', action: 'keep', why: ['current', 'recent'] },
      { release: 'releases/demo/0.9.0', action: 'remove', why: 'older' },
    ]);
    expect(plan.plan.blobs.remove.map((b) => b.digest).sort()).toEqual([...removable].sort());
    const text = await apertus(['prune', ...target, '--keep', '1', '--dry-run']);
    expect(text.stdout).toContain('remove    releases/demo/0.1.0 (older)');
    expect(text.stdout).toContain(`would remove ${removable.length}`);
    expect(await hostFiles()).toEqual(before);

    const pruned = await apertus(['prune', ...target, '--keep', '1', '--json']);
    expect(pruned.exitCode, pruned.stdout + pruned.stderr).toBe(0);
    const report = json<PruneReport>(pruned.stdout);
    expect(report).toMatchObject({
      ok: true,
      dryRun: false,
      removed: { releases: 2, blobs: removable.length },
    });
    expect(await exists(path.join(host.root, 'releases/demo/0.1.0'))).toBe(false);
    expect(await exists(path.join(host.root, 'releases/demo/0.2.0'))).toBe(true);
    const left = await storeBlobs();
    expect(await exists(path.join(host.root, 'releases/demo/0.9.0'))).toBe(false);
    for (const digest of removable) expect(left).not.toContain(digest);
    expect(left).toEqual(expect.arrayContaining([...(b020 ?? []), ...(b030 ?? [])]));
    expect(await readlink(path.join(host.root, 'current'))).toBe('releases/demo/0.3.0');
    expect(await healthFromHost([18080, 18090])).toEqual([200, 200]);
    expect((await auditRecords()).at(-1)).toMatchObject({ method: 'PRUNE', endpoint: 'keep 1', status: 0 });
  });

  it('uninstall stops the services and removes the release, keeping blobs; --purge removes them; both audited', async () => {
    const blobsBefore = await storeBlobs();
    const result = await apertus(['uninstall', ...target, '--json']);
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    const report = json<UninstallReport>(result.stdout);
    expect(report).toMatchObject({
      ok: true,
      purge: false,
      changed: true,
      release: { name: 'demo', version: '0.3.0', release: 'releases/demo/0.3.0' },
      stopped: [
        { name: 'llm', port: 18080 },
        { name: 'rag', port: 18090 },
      ],
      stillListening: [],
      removed: { releases: ['releases/demo/0.3.0'], blobs: 0 },
    });
    await expect(healthFromHost([18080])).rejects.toThrow();
    await expect(healthFromHost([18090])).rejects.toThrow();
    expect(await exists(path.join(host.root, 'current'))).toBe(false);
    expect(await exists(path.join(host.root, 'releases/demo/0.3.0'))).toBe(false);
    expect(await storeBlobs()).toEqual(blobsBefore);
    const state = JSON.parse(await readFile(path.join(host.root, 'state.json'), 'utf8'));
    expect(state).toMatchObject({ current: null, previous: null, pending: null });
    const status = json<HostStatus>((await apertus(['status', ...target, '--json'])).stdout);
    expect(status).toMatchObject({
      ok: true,
      installed: false,
      lastAudit: { method: 'UNINSTALL', status: 0 },
    });
    expect(status.releases.map((r) => r.version)).toEqual(['0.2.0']);

    const purged = await apertus(['uninstall', ...target, '--purge']);
    expect(purged.exitCode, purged.stdout + purged.stderr).toBe(0);
    expect(purged.stdout).toContain('(purged)');
    expect(await storeBlobs()).toEqual([]);
    expect(await exists(path.join(host.root, 'releases/demo'))).toBe(false);
    // The history stays: every record verifies, the last two are the uninstalls.
    const records = await auditRecords();
    expect(records.slice(-2).map((r) => [r.method, r.status])).toEqual([
      ['UNINSTALL', 0],
      ['UNINSTALL', 0],
    ]);
    const verified = await apertus(['audit', 'verify', '--installs', ...target, '--json']);
    expect(verified.exitCode, verified.stdout).toBe(0);
    expect(json<{ ok: boolean; records: number }>(verified.stdout)).toMatchObject({
      ok: true,
      records: records.length,
    });

    // Once more: nothing to do, nothing recorded.
    const again = await apertus(['uninstall', ...target, '--json']);
    expect(again.exitCode).toBe(0);
    expect(json<UninstallReport>(again.stdout)).toMatchObject({ changed: false, record: null });
    expect(await auditRecords()).toHaveLength(records.length);
  });

  it('audit verify --inventory verifies each host with a summary; --limit that matches nothing is exit 2', async () => {
    const inventory = await writeInventory();
    const result = await apertus(['audit', 'verify', '--installs', '--inventory', inventory, '--json']);
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    expect(
      json<{ ok: boolean; summary: unknown; hosts: Array<{ host: string; ok: boolean }> }>(result.stdout),
    ).toMatchObject({
      ok: true,
      summary: { hosts: 1, ok: 1, failed: 0 },
      hosts: [{ host: 'day-two', ok: true }],
    });
    const text = await apertus(['audit', 'verify', '--installs', '--inventory', inventory]);
    expect(text.stdout).toContain('1 hosts: 1 ok, 0 failed');
    const none = await apertus([
      'audit',
      'verify',
      '--installs',
      '--inventory',
      inventory,
      '--limit',
      'nope',
      '--json',
    ]);
    expect(none.exitCode).toBe(2);
  });
});
