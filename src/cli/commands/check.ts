import type { Command } from 'commander';
import type { CheckResult } from '../../core/check/check-result.js';
import { ApertusError } from '../../core/errors.js';
import type { CheckHostsOptions, ChecksReport, CheckTarget } from '../../core/operations/check.js';
import { existingBundle, existingFile, positiveNumber } from '../flag-values.js';
import { withExamples } from '../help-text.js';
import { runInterruptible } from '../interrupt.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../output/json-output.js';
import { chooseRendererMode } from '../output/renderer-mode.js';
import { ReportedFailure } from '../reported-failure.js';
import { hostTarget, withHostTargetOptions } from './host-target.js';
import { type InventoryFlags, inventoryTargetsOf, withInventoryOptions } from './inventory-flags.js';

interface CheckFlags extends InventoryFlags {
  bundle?: string;
  recipe?: string;
  model?: string;
  imageCuda?: string;
  imageConfig?: string;
  maxModelLen?: number;
  gpuMemoryUtilization?: number;
  tensorParallelSize?: number;
  hubUrl?: string;
  json?: boolean;
}

export function registerCheck(program: Command, io: CliIO): void {
  const command = withInventoryOptions(
    withHostTargetOptions(
      program
        .command('check')
        .description(
          'Check GPU hosts before installing: GPUs, driver, CUDA, model fit, disk, ports, OS, container runtime',
        ),
      { local: 'check this machine', root: 'per-host' },
    ),
    'check, in parallel,',
  )
    .option(
      '--bundle <file>',
      'judge the hosts against this bundle (its models, ports and bytes)',
      existingBundle('--bundle'),
    )
    .option('--recipe <dir>', 'judge the hosts against a recipe directory, before bundling')
    .option(
      '--hub-url <url>',
      "a recipe's hf: sources: the Hugging Face Hub or an internal mirror (default $HF_ENDPOINT, else huggingface.co); with HF_HUB_OFFLINE=1 only the local cache is read",
    )
    .option(
      '--model <path>',
      'judge the hosts against one model: a directory with config.json, or a .gguf file',
    )
    .option('--image-cuda <version>', "the runtime image's CUDA version, e.g. 13.0 (its CUDA_VERSION)")
    .option(
      '--image-config <file>',
      'OCI image config JSON of the runtime image; CUDA_VERSION is read from it',
      existingFile({
        flag: '--image-config',
        what: 'image config',
        code: 'image-config-invalid',
        hint: 'Pass the image config JSON (skopeo inspect --config docker://IMAGE > config.json, or the config blob of an OCI layout).',
      }),
    )
    .option(
      '--max-model-len <tokens>',
      "context length to fit (default: the model's maximum)",
      positiveNumber('--max-model-len', { integer: true }),
    )
    .option(
      '--gpu-memory-utilization <fraction>',
      'share of each GPU vLLM may use (default 0.9)',
      positiveNumber('--gpu-memory-utilization', { max: 1 }),
    )
    .option(
      '--tensor-parallel-size <n>',
      'judge this TP size only (default: find the smallest that fits)',
      positiveNumber('--tensor-parallel-size', { integer: true }),
    )
    .option('--json', 'print only the JSON report on stdout')
    .action(async (flags: CheckFlags) => {
      const targets = await checkTargets(flags, io);
      const options = await checkOptions(flags, io);
      const [{ checkHosts }, { runSteps }] = await Promise.all([
        import('../../core/operations/check.js'),
        import('../output/run-steps.js'),
      ]);
      const steps = targets.map((t) => ({ id: `host:${t.name}`, title: t.name }));
      const report = await runInterruptible(
        io,
        'Nothing was changed on any host; run the check again.',
        (signal) =>
          runSteps(io, chooseRendererMode(io, flags), steps, (onProgress) =>
            checkHosts(targets, { ...options, signal, onProgress }),
          ),
      );
      if (flags.json) writeJson(io, report);
      else io.stdout.write(formatChecksReport(report));
      if (!report.ok) throw new ReportedFailure();
    });
  withExamples(command, [
    {
      run: 'check --host root@10.0.0.5 --bundle out/apertus-8b-rag-1.0.0.tar',
      does: 'can this host run this bundle: GPUs, driver, fit, disk, ports',
    },
    { run: 'check --inventory hosts.yaml --recipe bundles/apertus-70b', does: 'every host, before bundling' },
    {
      run: 'check --local --model /models/Apertus-8B --max-model-len 32768',
      does: 'this machine, one model, one context length',
    },
  ]);
}

async function checkTargets(flags: CheckFlags, io: CliIO): Promise<CheckTarget[]> {
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
  const fromInventory = await inventoryTargetsOf(flags, io);
  if (fromInventory) return fromInventory;
  const target = await hostTarget(flags, io);
  return [{ name: target.kind === 'local' ? 'local' : target.address, target, root: flags.root }];
}

async function checkOptions(flags: CheckFlags, io: CliIO): Promise<CheckHostsOptions> {
  const { loadCheckSubject, loadImageCuda } = await import('../../core/operations/check-subject.js');
  const subject = await loadCheckSubject({
    bundle: flags.bundle,
    recipe: flags.recipe,
    model: flags.model,
    env: io.env,
    hubUrl: flags.hubUrl,
  });
  const image = await loadImageCuda({ cudaVersion: flags.imageCuda, configFile: flags.imageConfig });
  return {
    subject,
    image,
    fit: {
      maxModelLen: flags.maxModelLen,
      gpuMemoryUtilization: flags.gpuMemoryUtilization,
      tensorParallelSize: flags.tensorParallelSize,
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
