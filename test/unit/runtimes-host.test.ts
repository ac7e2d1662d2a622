import { execFile } from 'node:child_process';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApertusError } from '../../src/core/errors.js';
import { quoteArg } from '../../src/core/host/shell-quote.js';
import type { LlamacppServiceSpec } from '../../src/core/layout/types.js';
import { PROJECT_ROOT } from '../../src/core/project-root.js';
import { renderLlamacppCommand } from '../../src/core/runtimes/llamacpp/command.js';
import { collectRuntimeFiles, RUNTIME_PATHS } from '../../src/core/runtimes/runtime-files.js';
import {
  SUPERVISOR_NOT_RUNNING_EXIT,
  startUnderSupervisor,
  stopUnderSupervisor,
  supervisorFiles,
  supervisorStatusCommand,
} from '../../src/core/runtimes/supervisor.js';
import { quoteSystemdArg, renderSystemdUnit, systemdUnitName } from '../../src/core/runtimes/systemd.js';

const execFileAsync = promisify(execFile);

const service: LlamacppServiceSpec = {
  name: 'llm',
  runtime: 'llamacpp',
  model: { component: 'model', path: 'tiny-llama.gguf', id: 'apertus-demo-tiny' },
  port: 18080,
  threads: 1,
  contextSize: 256,
  embeddings: true,
};

const paths = {
  node: '/opt/rt/bin/node',
  server: '/opt/rt/server.mjs',
  modelPath: '/opt/rel/model/tiny-llama.gguf',
};

async function sh(script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync('sh', ['-c', script], { timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

describe('renderLlamacppCommand', () => {
  it('renders the server argv with threads, context size and embeddings', () => {
    expect(renderLlamacppCommand(service, paths)).toEqual([
      '/opt/rt/bin/node',
      '/opt/rt/server.mjs',
      '--model',
      '/opt/rel/model/tiny-llama.gguf',
      '--model-id',
      'apertus-demo-tiny',
      '--host',
      '127.0.0.1',
      '--port',
      '18080',
      '--threads',
      '1',
      '--context-size',
      '256',
      '--embeddings',
    ]);
  });

  it('leaves out --embeddings when the service has none and takes another host', () => {
    const argv = renderLlamacppCommand({ ...service, embeddings: false }, paths, { host: '0.0.0.0' });
    expect(argv).not.toContain('--embeddings');
    expect(argv[argv.indexOf('--host') + 1]).toBe('0.0.0.0');
  });

  it('refuses threads, ports and context sizes that are not positive integers', () => {
    for (const bad of [{ threads: 0 }, { threads: 1.5 }, { port: 70000 }, { contextSize: -1 }]) {
      expect(() => renderLlamacppCommand({ ...service, ...bad }, paths)).toThrow(ApertusError);
    }
  });
});

describe('supervisor command lines', () => {
  let dir: string;
  let dirs: { runDir: string; logDir: string };
  const supervisor = path.join(PROJECT_ROOT, 'templates/runtime/supervisor.mjs');

  beforeAll(async () => {
    // A space and a quote in every path prove the command lines quote what they embed.
    dir = await mkdtemp(path.join(tmpdir(), "apertus svc 'q' "));
    dirs = { runDir: path.join(dir, 'run dir'), logDir: path.join(dir, 'log dir') };
  });
  afterAll(async () => {
    await sh(stopUnderSupervisor({ name: 'ticker', runDir: dirs.runDir, timeoutSeconds: 5 }));
    await rm(dir, { recursive: true, force: true });
  });

  it('names pid and log files after the service and refuses names that are not file names', () => {
    expect(supervisorFiles('llm', { runDir: '/r', logDir: '/l' })).toEqual({
      pidFile: '/r/llm.pid',
      logFile: '/l/llm.log',
    });
    expect(() => supervisorFiles('../etc/passwd', { runDir: '/r', logDir: '/l' })).toThrow(ApertusError);
    expect(() => supervisorFiles('a b', { runDir: '/r', logDir: '/l' })).toThrow(ApertusError);
  });

  it('starts, reports, restarts nothing twice, and stops a supervised command', async () => {
    const { pidFile, logFile } = supervisorFiles('ticker', dirs);
    const marker = path.join(dir, 'marker file');
    const argv = [
      process.execPath,
      '-e',
      `require('fs').writeFileSync(${JSON.stringify(marker)}, process.env.TICK_GREETING); setInterval(() => {}, 1000)`,
    ];
    const start = startUnderSupervisor({
      name: 'ticker',
      node: process.execPath,
      supervisor,
      argv,
      env: { TICK_GREETING: "it's $HOME" },
      workingDirectory: dir,
      ...dirs,
    });

    const started = await sh(start);
    expect(started.stderr).toBe('');
    expect(started.code).toBe(0);
    expect(started.stdout).toMatch(/ticker started \(supervisor pid \d+\)/);
    const pid = (await readFile(pidFile, 'utf8')).trim();

    const status = await sh(supervisorStatusCommand({ name: 'ticker', runDir: dirs.runDir }));
    expect(status).toMatchObject({ code: 0, stdout: `running ${pid}\n` });

    const again = await sh(start);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('already running');
    expect((await readFile(pidFile, 'utf8')).trim()).toBe(pid);

    // The environment value reaches the child literally, not expanded by any shell.
    for (let i = 0; i < 50 && !(await exists(marker)); i++) await new Promise((r) => setTimeout(r, 100));
    expect(await readFile(marker, 'utf8')).toBe("it's $HOME");

    const stopped = await sh(stopUnderSupervisor({ name: 'ticker', runDir: dirs.runDir }));
    expect(stopped.code).toBe(0);
    expect(stopped.stdout).toContain('ticker stopped');
    expect(await exists(pidFile)).toBe(false);
    expect(await readFile(logFile, 'utf8')).toMatch(/SIGTERM received; stopping[\s\S]*stopped/);

    const after = await sh(supervisorStatusCommand({ name: 'ticker', runDir: dirs.runDir }));
    expect(after).toMatchObject({ code: SUPERVISOR_NOT_RUNNING_EXIT, stdout: 'stopped\n' });
  });

  it('treats stopping a stopped service, or one with a stale pid file, as done', async () => {
    expect((await sh(stopUnderSupervisor({ name: 'never-started', runDir: dirs.runDir }))).code).toBe(0);
    await mkdir(dirs.runDir, { recursive: true });
    const { pidFile } = supervisorFiles('stale', dirs);
    // Our own pid is alive but is no supervisor: the command line check must say so.
    await writeFile(pidFile, `${process.pid}\n`);
    const stale = await sh(stopUnderSupervisor({ name: 'stale', runDir: dirs.runDir }));
    expect(stale.code).toBe(0);
    expect(stale.stdout).toContain('stale pid file removed');
    expect(await exists(pidFile)).toBe(false);
  });

  it('kills the process group of a supervisor that ignores SIGTERM past the timeout', async () => {
    await mkdir(dirs.runDir, { recursive: true });
    const { pidFile } = supervisorFiles('stubborn', dirs);
    const childFile = path.join(dir, 'stubborn child');
    // Stands in for a hung supervisor: "supervisor.mjs" in its command line, SIGTERM ignored,
    // and a child in its process group that only the group kill reaches.
    const script = [
      `const child = require('child_process').spawn('sleep', ['60'], { stdio: 'ignore' });`,
      `require('fs').writeFileSync(${JSON.stringify(childFile)}, String(child.pid));`,
      `process.on('SIGTERM', () => {}); setInterval(() => {}, 1000);`,
    ].join(' ');
    const stubborn =
      `setsid ${quoteArg(process.execPath)} -e ${quoteArg(script)} supervisor.mjs </dev/null >/dev/null 2>&1 & ` +
      `echo $! > ${quoteArg(pidFile)}`;
    expect((await sh(stubborn)).code).toBe(0);
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    for (let i = 0; i < 50 && !(await exists(childFile)); i++) await new Promise((r) => setTimeout(r, 100));
    const childPid = Number(await readFile(childFile, 'utf8'));
    const processState = async (p: number): Promise<string> => {
      const stat = await readFile(`/proc/${p}/stat`, 'utf8').catch(() => 'gone) X');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    };
    expect(await processState(childPid)).toBe('S');

    const stopped = await sh(
      stopUnderSupervisor({ name: 'stubborn', runDir: dirs.runDir, timeoutSeconds: 1 }),
    );
    expect(stopped.code).toBe(0);
    expect(stopped.stderr).toContain('killed after 1 s');
    await new Promise((r) => setTimeout(r, 100));
    // Dead: gone, or a zombie nobody here reaps.
    expect(['X', 'Z']).toContain(await processState(pid));
    expect(['X', 'Z']).toContain(await processState(childPid));
    expect(await exists(pidFile)).toBe(false);
  });

  it('reports a supervisor that cannot start, with its log', async () => {
    const start = startUnderSupervisor({
      name: 'broken',
      node: process.execPath,
      supervisor: path.join(dir, 'no-such-supervisor.mjs'),
      argv: ['/bin/true'],
      startTimeoutSeconds: 1,
      ...dirs,
    });
    const result = await sh(start);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('the supervisor did not start');
    expect(result.stderr).toContain('no-such-supervisor.mjs');
  });
});

describe('systemd units', () => {
  const argv = renderLlamacppCommand(service, { ...paths, modelPath: '/opt/rel/model/my model 100%.gguf' });

  it('names units after the service', () => {
    expect(systemdUnitName('llm')).toBe('apertus-llm.service');
    expect(() => systemdUnitName('a/b')).toThrow(ApertusError);
  });

  it('quotes ExecStart words the way systemd parses them', () => {
    expect(quoteSystemdArg('/opt/rt/bin/node')).toBe('/opt/rt/bin/node');
    expect(quoteSystemdArg('a b')).toBe('"a b"');
    expect(quoteSystemdArg('100%')).toBe('"100%%"');
    expect(quoteSystemdArg('$HOME')).toBe('"$$HOME"');
    expect(quoteSystemdArg('say "hi" \\o/')).toBe('"say \\"hi\\" \\\\o/"');
    expect(() => quoteSystemdArg('two\nlines')).toThrow(ApertusError);
  });

  it('renders a unit with ExecStart, Restart=on-failure, the user and the working directory', () => {
    const text = renderSystemdUnit({
      service: 'llm',
      argv,
      workingDirectory: '/var/lib/apertus/current',
      user: 'apertus',
      environment: { NODE_ENV: 'production' },
    });
    expect(text).toContain('Description=apertus service llm\n');
    expect(text).toContain(
      'ExecStart=/opt/rt/bin/node /opt/rt/server.mjs --model "/opt/rel/model/my model 100%%.gguf" ' +
        '--model-id apertus-demo-tiny --host 127.0.0.1 --port 18080 --threads 1 --context-size 256 --embeddings\n',
    );
    expect(text).toContain('Restart=on-failure\n');
    expect(text).toContain('User=apertus\n');
    expect(text).toContain('WorkingDirectory=/var/lib/apertus/current\n');
    expect(text).toContain('Environment=NODE_ENV=production\n');
    expect(text).toContain('[Install]\nWantedBy=multi-user.target');
    expect(text).not.toContain('{{');
  });

  it('drops the User and Environment lines when there are none', () => {
    const text = renderSystemdUnit({ service: 'llm', argv, workingDirectory: '/srv' });
    expect(text).not.toMatch(/^User=/m);
    expect(text).not.toMatch(/^Environment=/m);
    expect(text).not.toMatch(/\n\n\n/);
  });

  it('refuses relative programs and working directories', () => {
    expect(() =>
      renderSystemdUnit({ service: 'llm', argv: ['node', 'x'], workingDirectory: '/srv' }),
    ).toThrow(ApertusError);
    expect(() => renderSystemdUnit({ service: 'llm', argv, workingDirectory: 'srv' })).toThrow(ApertusError);
  });

  it('passes systemd-analyze verify where systemd is installed', async (context) => {
    const which = await sh('command -v systemd-analyze');
    if (which.code !== 0) {
      context.skip();
      return;
    }
    const dir = await mkdtemp(path.join(tmpdir(), 'apertus-unit-'));
    try {
      const server = path.join(PROJECT_ROOT, 'templates/runtime/server.mjs');
      const unit = renderSystemdUnit({
        service: 'llm',
        argv: renderLlamacppCommand(service, {
          node: process.execPath,
          server,
          modelPath: path.join(dir, 'm.gguf'),
        }),
        workingDirectory: dir,
        user: 'root',
      });
      const file = path.join(dir, systemdUnitName('llm'));
      await writeFile(file, unit);
      const result = await sh(`systemd-analyze verify '${file}'`);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('collectRuntimeFiles', () => {
  it('collects node, the scripts and the node-llama-cpp closure for linux-x64 only, sorted', async () => {
    const first = await collectRuntimeFiles(PROJECT_ROOT);
    const second = await collectRuntimeFiles(PROJECT_ROOT);
    expect(second).toEqual(first);

    expect(first.node.path).toBe(
      await import('node:fs/promises').then((fs) => fs.realpath(process.execPath)),
    );
    expect(first.node.mode).toBe(0o755);
    expect(RUNTIME_PATHS.node).toBe('bin/node');

    const names = first.tree.map((file) => file.path);
    expect(names).toEqual([...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    expect(new Set(names).size).toBe(names.length);
    expect(names).toContain('server.mjs');
    expect(names).toContain('supervisor.mjs');
    expect(names).toContain('node_modules/node-llama-cpp/package.json');
    expect(names).toContain('node_modules/node-llama-cpp/llama/binariesGithubRelease.json');
    expect(names).toContain('node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/llama-addon.node');
    expect(names).toContain('node_modules/@huggingface/jinja/package.json');
    // The RAG service's packages: the pgvector client, the PDF and DOCX readers.
    for (const name of ['pg', 'pg-pool', 'pg-protocol', 'unpdf', 'mammoth', 'jszip'])
      expect(names).toContain(`node_modules/${name}/package.json`);
    expect(names).toContain('rag/pgvector-store.mjs');
    expect(names).toContain('rag/document-readers.mjs');

    // Other platforms' and GPU binaries, the llama.cpp sources and files Node never loads stay out.
    expect(names.some((n) => /@node-llama-cpp\/(?!linux-x64\/)/.test(n))).toBe(false);
    expect(names.some((n) => n.includes('gitRelease.bundle') || n.includes('/llama/addon/'))).toBe(false);
    expect(names.some((n) => n.endsWith('.d.ts') || n.endsWith('.js.map'))).toBe(false);
    expect(names.some((n) => n.startsWith('node_modules/.bin/'))).toBe(false);

    const addon = first.tree.find((f) => f.path.endsWith('llama-addon.node'));
    expect(addon?.source.startsWith(PROJECT_ROOT)).toBe(true);
    expect(first.tree.every((f) => f.mode === 0o644 || f.mode === 0o755)).toBe(true);
    expect(first.treeBytes).toBe(first.tree.reduce((sum, f) => sum + f.size, 0));
    expect(first.totalBytes).toBe(first.treeBytes + first.node.size);
    // The closure without the build inputs is tens of MB, not the hundreds of all variants.
    expect(first.treeBytes).toBeLessThan(60e6);

    expect(first.packages.map((p) => p.name)).toContain('@node-llama-cpp/linux-x64');
    expect(first.packages.find((p) => p.name === 'node-llama-cpp')?.version).toBe('3.21.1');
  });

  it('reports progress and says what to do when node_modules is missing', async () => {
    const events: string[] = [];
    await collectRuntimeFiles(PROJECT_ROOT, { onProgress: (e) => events.push(`${e.step}:${e.status}`) });
    expect(events).toEqual(['runtime.collect:start', 'runtime.collect:ok']);

    const empty = await mkdtemp(path.join(tmpdir(), 'apertus-empty-'));
    try {
      await expect(collectRuntimeFiles(empty)).rejects.toMatchObject({
        code: 'runtime-missing-package',
        hint: expect.stringContaining('npm ci'),
      });
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});
