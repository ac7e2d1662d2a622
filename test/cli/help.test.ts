import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import type { Command } from 'commander';
import { afterEach, describe, expect, it } from 'vitest';
import { buildProgram, EXIT } from '../../src/cli/main.js';
import { runCli } from '../helpers/run-cli.js';

/** The program as main() builds it, to ask commander what each command declares. */
function program(): Command {
  return buildProgram({ stdout: new PassThrough(), stderr: new PassThrough(), isTTY: false, env: {} });
}

/** Every command that runs something (keys generate, audit verify), with its argv path. */
function leafCommands(parent: Command, path: string[] = []): { argv: string[]; command: Command }[] {
  return parent.commands.flatMap((command) => {
    const argv = [...path, command.name()];
    return command.commands.length > 0 ? leafCommands(command, argv) : [{ argv, command }];
  });
}

/** The lines of a help section, from its heading to the next blank line. */
function section(text: string, heading: string): string[] {
  const lines = text.split('\n');
  const start = lines.indexOf(heading);
  expect(start, `no "${heading}" section in:\n${text}`).toBeGreaterThanOrEqual(0);
  const end = lines.indexOf('', start);
  return lines.slice(start + 1, end === -1 ? undefined : end);
}

describe('apertus --help', () => {
  it('lists every command under its group, then the environment and the exit codes', async () => {
    const run = await runCli(['--help']);
    expect(run.exitCode).toBe(0);
    const commands = program().commands;
    expect(commands.length).toBeGreaterThanOrEqual(12);
    const headings = [...new Set(commands.map((c) => c.helpGroup()))];
    expect(headings).toEqual(['Connected side:', 'Inside the gap:', 'Day two:', 'Other:']);
    for (const command of commands) {
      const listed = section(run.stdout, command.helpGroup());
      expect(listed.some((line) => line.startsWith(`  ${command.name()} `))).toBe(true);
    }
    // The groups appear in the order of the journey.
    const positions = headings.map((h) => run.stdout.indexOf(`\n${h}\n`));
    expect(positions).toEqual([...positions].sort((a, b) => a - b));

    const environment = section(run.stdout, 'Environment:').join('\n');
    for (const variable of [
      'HF_TOKEN',
      'HF_ENDPOINT',
      'HF_HOME',
      'HF_HUB_OFFLINE',
      'APERTUS_REGISTRY_USERNAME',
      'APERTUS_REGISTRY_PASSWORD',
      'PIP_INDEX_URL',
    ]) {
      expect(environment).toMatch(new RegExp(`^  ${variable}\\b`, 'm'));
    }
    const exitCodes = section(run.stdout, 'Exit codes:');
    for (const code of Object.values(EXIT)) {
      expect(
        exitCodes.some((line) => new RegExp(`^  ${code}\\s+\\S`).test(line)),
        `exit ${code}`,
      ).toBe(true);
    }
  });

  it("lists every flag of every command in that command's --help, with examples", async () => {
    const leaves = leafCommands(program());
    expect(leaves.map((l) => l.argv.join(' '))).toEqual(
      expect.arrayContaining(['keys generate', 'audit verify']),
    );
    for (const { argv, command } of leaves) {
      const run = await runCli([...argv, '--help']);
      expect(run.exitCode, argv.join(' ')).toBe(0);
      for (const option of command.options) expect(run.stdout, argv.join(' ')).toContain(option.flags);
      const examples = section(run.stdout, 'Examples:');
      expect(examples[0], argv.join(' ')).toMatch(new RegExp(`^  \\$ apertus ${argv.join(' ')}\\b`));
    }
  });
});

describe('a reader that stops early', () => {
  it('apertus --help | head: the closed pipe ends apertus quietly, exit 0', async () => {
    const child = spawn(process.execPath, [path.resolve('bin/apertus.js'), '--help'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Closed before apertus writes a byte, as `head -0` would.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const [code] = (await once(child, 'close')) as [number | null];
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });
});

describe('apertus -V', () => {
  const saved = process.env.npm_package_version;
  afterEach(() => {
    if (saved === undefined) delete process.env.npm_package_version;
    else process.env.npm_package_version = saved;
  });

  it("prints our package.json's version, not the npm script's package version", async () => {
    const own = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
    // As when apertus runs from another package's npm script: npm sets that package's version.
    process.env.npm_package_version = `${own}-other-package`;
    const run = await runCli(['-V']);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toBe(`${own}\n`);
  });
});
