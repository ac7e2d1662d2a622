import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerCheck } from '../../src/cli/commands/check.js';
import type { CliIO } from '../../src/cli/io.js';
import { ReportedFailure } from '../../src/cli/reported-failure.js';
import { ApertusError } from '../../src/core/errors.js';
import type { ChecksReport } from '../../src/core/operations/check.js';
import { generateTinyModel } from '../../src/core/tiny-model/generate.js';

const APERTUS_8B_DIR = path.resolve('test/fixtures/models/apertus-8b-instruct-2509');

let work: string;
let recipe: string;

/** The command in-process, as src/cli/main.ts runs it (main.ts registers it once the lead adds the line). */
async function run(argv: string[]): Promise<{ stdout: string; stderr: string; error?: unknown }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const chunks = { stdout: '', stderr: '' };
  stdout.on('data', (c: Buffer) => {
    chunks.stdout += c.toString();
  });
  stderr.on('data', (c: Buffer) => {
    chunks.stderr += c.toString();
  });
  const io: CliIO = { stdout, stderr, isTTY: false, env: { CI: '1' } };
  const program = new Command('apertus').exitOverride();
  registerCheck(program, io);
  for (const command of program.commands) command.exitOverride();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return chunks;
  } catch (error) {
    return { ...chunks, error };
  }
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'apertus-check-cli-'));
  recipe = path.join(work, 'recipe');
  await mkdir(path.join(recipe, 'model'), { recursive: true });
  await writeFile(path.join(recipe, 'model', 'tiny-llama.gguf'), generateTinyModel());
  await writeFile(
    path.join(recipe, 'apertus.yaml'),
    [
      'apiVersion: apertus.dev/v1',
      'kind: Bundle',
      'metadata: { name: demo, version: 0.1.0 }',
      'components:',
      '  - { name: model, kind: model, source: "file:model" }',
      'services:',
      '  - { name: llm, runtime: llamacpp, model: model/tiny-llama.gguf, modelId: tiny, port: 18089, threads: 1, contextSize: 256 }',
    ].join('\n'),
  );
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('apertus check (in-process)', () => {
  it('--json prints one JSON report; a GPU model on this GPU-less machine fails with exit 1', async () => {
    const { stdout, error } = await run([
      'check',
      '--local',
      '--root',
      path.join(work, 'root'),
      '--model',
      APERTUS_8B_DIR,
      '--json',
    ]);
    expect(error).toBeInstanceOf(ReportedFailure);
    const report = JSON.parse(stdout) as ChecksReport;
    expect(report).toMatchObject({
      ok: false,
      status: 'fail',
      subject: { kind: 'model', workloads: ['apertus-8b-instruct-2509/config.json (vLLM)'] },
    });
    const [host] = report.hosts;
    expect(host?.host).toBe('local');
    const ids = host?.results.map((r) => r.id) ?? [];
    expect(ids).toEqual(
      expect.arrayContaining(['os', 'arch', 'libc', 'clock', 'install-root', 'disk', 'gpu', 'fit']),
    );
    const gpu = host?.results.find((r) => r.id === 'gpu');
    expect(gpu?.status).toBe('fail');
    expect(gpu?.detail).toMatch(/no NVIDIA driver|driver/);
    expect(host?.fit[0]?.report.model.kvBytesPerToken).toBe(131072);
  });

  it('prints a table per host: status, check, detail and hint', async () => {
    const { stdout, error } = await run([
      'check',
      '--local',
      '--root',
      path.join(work, 'root'),
      '--recipe',
      recipe,
    ]);
    expect(error).toBeUndefined();
    expect(stdout).toContain(`Checked against recipe ${path.join(recipe, 'apertus.yaml')}`);
    expect(stdout).toMatch(/^local \(local\): (ok|WARN)$/m);
    expect(stdout).toMatch(/^ {2}STATUS {2}CHECK +DETAIL$/m);
    expect(stdout).toMatch(/^ {2}ok {6}ports +llm: port 18089 \(llm\) is free$/m);
    expect(stdout).toMatch(/^ {2}ok {6}gpu {16}no NVIDIA driver/m);
    expect(stdout).toContain("not needed: the recipe's models run on CPU (llamacpp)");
    expect(stdout).toMatch(/^1 host: [01] ok, [01] with warnings, 0 failed$/m);
  });

  it('refuses a missing or doubled target, and malformed numbers, as usage errors', async () => {
    for (const argv of [
      ['check'],
      ['check', '--local', '--host', 'root@10.0.0.5'],
      ['check', '--local', '--max-model-len', 'lots'],
      ['check', '--local', '--gpu-memory-utilization', '1.5'],
      ['check', '--local', '--image-cuda', 'thirteen'],
      ['check', '--local', '--bundle', 'x.tar', '--model', APERTUS_8B_DIR],
    ]) {
      const { error } = await run(argv);
      expect(error, argv.join(' ')).toBeInstanceOf(ApertusError);
      expect((error as ApertusError).kind).toBe('user');
    }
  });

  it('an inventory host that cannot be reached is a failed "connect" result, not a crash', async () => {
    const inventory = path.join(work, 'hosts.yaml');
    await writeFile(
      inventory,
      [
        'apiVersion: apertus.dev/v1',
        'kind: Inventory',
        'defaults:',
        `  knownHosts: ${path.join(work, 'known_hosts')}`,
        'hosts:',
        '  - { name: closed-port, address: root@127.0.0.1:1 }',
      ].join('\n'),
    );
    await writeFile(path.join(work, 'known_hosts'), '');
    const { stdout, error } = await run(['check', '--inventory', inventory, '--json']);
    expect(error).toBeInstanceOf(ReportedFailure);
    const report = JSON.parse(stdout) as ChecksReport;
    expect(report.hosts).toHaveLength(1);
    expect(report.hosts[0]).toMatchObject({
      host: 'closed-port',
      status: 'fail',
      results: [{ id: 'connect', status: 'fail' }],
    });
  });
});
