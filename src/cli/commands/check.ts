import type { Command } from 'commander';
import type { CheckResult } from '../../core/check/check-result.js';
import { inventoryTargets, loadInventory } from '../../core/check/inventory.js';
import { ApertusError } from '../../core/errors.js';
import {
  type CheckHostsOptions,
  type ChecksReport,
  type CheckTarget,
  checkHosts,
} from '../../core/operations/check.js';
import { loadCheckSubject, loadImageCuda } from '../../core/operations/check-subject.js';
import { DEFAULT_HOST_ROOT } from '../../core/target/layout.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../output/json-output.js';
import { chooseRendererMode } from '../output/renderer-mode.js';
import { runSteps } from '../output/run-steps.js';
import { ReportedFailure } from '../reported-failure.js';

interface CheckFlags {
  host?: string;
  inventory?: string;
  local?: boolean;
  bundle?: string;
  recipe?: string;
  model?: string;
  identity?: string;
  knownHosts?: string;
  acceptNewHostKey?: boolean;
  root?: string;
  imageCuda?: string;
  imageConfig?: string;
  maxModelLen?: string;
  gpuMemoryUtilization?: string;
  tensorParallelSize?: string;
  json?: boolean;
}

export function registerCheck(program: Command, io: CliIO): void {
  program
    .command('check')
    .description(
      'Check GPU hosts before installing: GPUs, driver, CUDA, model fit, disk, ports, OS, container runtime',
    )
    .option('--host <user@addr[:port]>', 'check this host over SSH')
    .option('--inventory <file>', 'check every host of an inventory YAML file, in parallel')
    .option('--local', 'check this machine')
    .option('--bundle <file>', 'judge the hosts against this bundle (its models, ports and bytes)')
    .option('--recipe <dir>', 'judge the hosts against a recipe directory, before bundling')
    .option(
      '--model <path>',
      'judge the hosts against one model: a directory with config.json, or a .gguf file',
    )
    .option('-i, --identity <file>', 'SSH private key (default: the SSH agent)')
    .option(
      '--known-hosts <file>',
      'known_hosts file to check host keys against (default ~/.ssh/known_hosts)',
    )
    .option(
      '--accept-new-host-key',
      'trust and record the key of a host seen for the first time (never a changed key)',
    )
    .option(
      '--root <dir>',
      `install root on the host (default ${DEFAULT_HOST_ROOT}; in an inventory, set root: per host)`,
    )
    .option('--image-cuda <version>', "the runtime image's CUDA version, e.g. 13.0 (its CUDA_VERSION)")
    .option(
      '--image-config <file>',
      'OCI image config JSON of the runtime image; CUDA_VERSION is read from it',
    )
    .option('--max-model-len <tokens>', "context length to fit (default: the model's maximum)")
    .option('--gpu-memory-utilization <fraction>', 'share of each GPU vLLM may use (default 0.9)')
    .option('--tensor-parallel-size <n>', 'judge this TP size only (default: find the smallest that fits)')
    .option('--json', 'print only the JSON report on stdout')
    .action(async (flags: CheckFlags) => {
      const targets = await checkTargets(flags);
      const options = await checkOptions(flags);
      const steps = targets.map((t) => ({ id: `host:${t.name}`, title: t.name }));
      const report = await runSteps(io, chooseRendererMode(io, flags), steps, (onProgress) =>
        checkHosts(targets, { ...options, onProgress }),
      );
      if (flags.json) writeJson(io, report);
      else io.stdout.write(formatChecksReport(report));
      if (!report.ok) throw new ReportedFailure();
    });
}

async function checkTargets(flags: CheckFlags): Promise<CheckTarget[]> {
  const chosen = [flags.host && '--host', flags.inventory && '--inventory', flags.local && '--local'].filter(
    Boolean,
  );
  if (chosen.length !== 1) {
    throw new ApertusError(
      'usage',
      chosen.length === 0 ? 'No host to check.' : `${chosen.join(' and ')} exclude each other.`,
      {
        hint: 'Pass one of --host USER@ADDR[:PORT], --inventory FILE or --local.',
      },
    );
  }
  if (flags.inventory) {
    const ssh = [
      flags.identity && '--identity',
      flags.knownHosts && '--known-hosts',
      flags.root && '--root',
    ].filter(Boolean);
    if (ssh.length > 0) {
      throw new ApertusError('usage', `${ssh.join(', ')} cannot be combined with --inventory.`, {
        hint: 'Set identity, knownHosts and root in the inventory (per host, or under defaults:).',
      });
    }
    const targets = inventoryTargets(await loadInventory(flags.inventory));
    if (flags.acceptNewHostKey) {
      for (const t of targets) if (t.target.kind === 'ssh') t.target.acceptNewHostKey = true;
    }
    return targets;
  }
  if (flags.local) return [{ name: 'local', target: { kind: 'local' }, root: flags.root }];
  return [
    {
      name: flags.host as string,
      root: flags.root,
      target: {
        kind: 'ssh',
        address: flags.host as string,
        identityFile: flags.identity,
        knownHostsFile: flags.knownHosts,
        acceptNewHostKey: flags.acceptNewHostKey,
      },
    },
  ];
}

function positiveNumber(
  flag: string,
  value: string | undefined,
  integer: boolean,
  max?: number,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n)) || (max !== undefined && n > max)) {
    throw new ApertusError(
      'usage',
      `${flag} ${value} is not ${integer ? 'a positive whole number' : `a number in (0, ${max}]`}.`,
      {
        hint: integer ? `e.g. ${flag} 32768` : `e.g. ${flag} 0.9`,
      },
    );
  }
  return n;
}

async function checkOptions(flags: CheckFlags): Promise<CheckHostsOptions> {
  const subject = await loadCheckSubject({ bundle: flags.bundle, recipe: flags.recipe, model: flags.model });
  const image = await loadImageCuda({ cudaVersion: flags.imageCuda, configFile: flags.imageConfig });
  return {
    subject,
    image,
    fit: {
      maxModelLen: positiveNumber('--max-model-len', flags.maxModelLen, true),
      gpuMemoryUtilization: positiveNumber('--gpu-memory-utilization', flags.gpuMemoryUtilization, false, 1),
      tensorParallelSize: positiveNumber('--tensor-parallel-size', flags.tensorParallelSize, true),
    },
  };
}

const LABEL: Record<CheckResult['status'], string> = { ok: 'ok', warn: 'WARN', fail: 'FAIL' };
const WIDTH = 110;

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines.length > 0 ? lines : [''];
}

/** A table per host: status, check, detail, and the hint under it; then one summary line. */
export function formatChecksReport(report: ChecksReport): string {
  const out: string[] = [];
  if (report.subject) out.push(`Checked against ${report.subject.kind} ${report.subject.name}`, '');
  for (const host of report.hosts) {
    out.push(`${host.host} (${host.transport}): ${LABEL[host.status]}`);
    const checkWidth = Math.max(5, ...host.results.map((r) => r.id.length)) + 2;
    out.push(`  ${'STATUS'.padEnd(6)}  ${'CHECK'.padEnd(checkWidth)}DETAIL`);
    const indent = ' '.repeat(2 + 6 + 2 + checkWidth);
    const detailWidth = Math.max(40, WIDTH - indent.length);
    for (const result of host.results) {
      const detail = result.subject ? `${result.subject}: ${result.detail}` : result.detail;
      const [first = '', ...rest] = wrap(detail, detailWidth);
      out.push(`  ${LABEL[result.status].padEnd(6)}  ${result.id.padEnd(checkWidth)}${first}`);
      for (const line of rest) out.push(`${indent}${line}`);
      if (result.hint) {
        const [h = '', ...more] = wrap(`hint: ${result.hint}`, detailWidth);
        out.push(`${indent}${h}`);
        for (const line of more) out.push(`${indent}      ${line}`);
      }
    }
    out.push('');
  }
  const count = (status: string) => report.hosts.filter((h) => h.status === status).length;
  out.push(
    `${report.hosts.length} host${report.hosts.length === 1 ? '' : 's'}: ${count('ok')} ok, ${count('warn')} with warnings, ${count('fail')} failed`,
  );
  return `${out.join('\n')}\n`;
}
