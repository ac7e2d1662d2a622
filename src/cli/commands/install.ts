import type { Command } from 'commander';
import type { CheckId } from '../../core/check/check-result.js';
import { ApertusError } from '../../core/errors.js';
import type { INSTALL_STEPS, InstallResult } from '../../core/operations/install.js';
import { existingBundle, keyFile, positiveNumber } from '../flag-values.js';
import { withExamples } from '../help-text.js';
import { runInterruptible } from '../interrupt.js';
import type { CliIO } from '../io.js';
import { formatBytes, formatDuration } from '../output/format.js';
import { writeJson } from '../output/json-output.js';
import { chooseRendererMode } from '../output/renderer-mode.js';
import { ReportedFailure } from '../reported-failure.js';
import { hostTarget, withHostTargetOptions } from './host-target.js';
import { type InventoryFlags, inventoryTargetsOf, withInventoryOptions } from './inventory-flags.js';

const TITLES: Record<(typeof INSTALL_STEPS)[number], string> = {
  'verify-bundle': 'Verify bundle',
  connect: 'Connect',
  trust: 'Check the signature against the host trust store',
  check: 'Check host',
  preflight: 'Preflight',
  transfer: 'Upload missing blobs',
  stage: 'Stage release',
  images: 'Load container images',
  wheels: 'Install Python wheels into venvs',
  activate: 'Activate',
  'verify.health': 'Health',
  'verify.models': 'Model listed',
  'verify.chat': 'Chat completion',
  'verify.embeddings': 'Embeddings',
  'verify.rag-canary': 'RAG canary',
  'verify.golden': 'Golden prompts',
  'verify.eval': 'Evaluation sets',
  'verify.audit': 'Audit chain',
  'verify.offline': 'Offline (egress packets)',
  rollback: 'Rollback',
  report: 'Report',
};

interface InstallFlags extends InventoryFlags {
  serial?: string;
  forks?: number;
  maxFail?: string;
  key?: string;
  trustKey?: string;
  allowUnsigned?: boolean;
  skipCheck?: string[];
  dryRun?: boolean;
  fullVerify?: boolean;
  countEgress?: string;
  tlsCert?: string;
  tlsKey?: string;
  insecureHttp?: boolean;
  exposeAddress?: string;
  json?: boolean;
}

export function registerInstall(program: Command, io: CliIO): void {
  const command = withInventoryOptions(
    withHostTargetOptions(
      program
        .command('install')
        .description(
          'Install a bundle onto a host over SSH (or --local), or onto an inventory in batches; start its services and prove they answer',
        )
        .argument(
          '<bundle>',
          'the bundle tar written by `apertus bundle`, its .tar.parts.json index when split, or a directory',
          existingBundle(),
        ),
      { local: 'install on this machine instead (the operator sits at the GPU host)', root: 'per-host' },
    ),
    'install on',
  )
    .option(
      '--serial <sizes>',
      'with --inventory: batch sizes, a count (2), a share of the hosts (25%) or a list (1,25%) whose last item repeats (default: 1 canary host, then --forks)',
    )
    .option(
      '--forks <n>',
      'with --inventory: hosts installed at once (default 5)',
      positiveNumber('--forks', { integer: true }),
    )
    .option(
      '--max-fail <percent>',
      'with --inventory: the share of hosts that may fail before no further batch starts (default 0%)',
    )
    .option(
      '--trust-key <file>',
      "the minisign public key a new host (one that trusts no key yet) is to trust; the bundle must be signed with it (recorded in the host's audit log)",
      keyFile('--trust-key', 'public'),
    )
    .option(
      '--allow-unsigned',
      'install on a host that trusts no key without checking the signature (labs only; recorded, and warned about by every `apertus status`)',
    )
    .option('--key <file>', 'no longer used by install: the host trust store decides (see --trust-key)')
    .option(
      '--skip-check <id>',
      'accept a failed preflight check (repeatable; ids as `apertus check` prints them); the report records it',
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option('--dry-run', 'print the plan (what would be uploaded and started); change nothing')
    .option(
      '--full-verify',
      'hash every file of the bundle here before any host is touched (default: the signed checksum list and metadata first; each blob is hashed as it is sent, on both ends, and blobs a host already has are re-hashed there)',
    )
    .option(
      '--count-egress <interface>',
      'count the packets the host sends through this interface (where its routes out lead) during verification; fail unless 0',
    )
    .option(
      '--tls-cert <file>',
      "the gateway's certificate for this host (PEM; your PKI's, or from `apertus tls cert`): uploaded 0600 under the install root, never bundled",
    )
    .option('--tls-key <file>', 'the private key of --tls-cert (PEM, unencrypted)')
    .option(
      '--insecure-http',
      'serve the gateway in plain HTTP, API keys in clear (labs only; `apertus status` warns about it)',
    )
    .option(
      '--expose-address <ip>',
      "the address the gateway binds on this host, instead of the recipe's expose.address",
    )
    .option('--json', 'print only the JSON report on stdout')
    .action(async (bundlePath: string, flags: InstallFlags) => {
      if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
        throw new ApertusError('usage', '--tls-cert and --tls-key go together.', {
          hint: 'Pass the certificate and its private key, both PEM files.',
        });
      }
      if (flags.key !== undefined) {
        throw new ApertusError(
          'usage',
          'install no longer takes --key: the host decides which signing keys it trusts.',
          {
            hint: 'On a host that trusts no key yet, pass --trust-key KEY.pub; afterwards the host checks the signature itself (`apertus trust list` shows its keys). `apertus verify --key` still checks a bundle on your side.',
          },
        );
      }
      const fleet = await inventoryTargetsOf(flags, io);
      if (fleet && (flags.tlsCert !== undefined || flags.exposeAddress !== undefined)) {
        throw new ApertusError(
          'usage',
          '--tls-cert and --expose-address are per host; an inventory has many.',
          {
            hint: 'Give each host its own in the inventory: tlsCert, tlsKey and exposeAddress (relative paths from the inventory file).',
          },
        );
      }
      if (fleet) return installFleet(io, bundlePath, flags, fleet);
      const fleetOnly = [
        flags.serial !== undefined && '--serial',
        flags.forks !== undefined && '--forks',
        flags.maxFail !== undefined && '--max-fail',
      ].filter(Boolean);
      if (fleetOnly.length > 0)
        throw new ApertusError(
          'usage',
          `${fleetOnly.join(', ')} batch the hosts of an inventory; there is none.`,
          {
            hint: 'Pass --inventory FILE to install on many hosts, or leave these flags out for one --host.',
          },
        );
      const target = await hostTarget(flags, io);
      const [{ parseSkipChecks }, { INSTALL_STEPS, install }, { runSteps, stepDefinitions }] =
        await Promise.all([
          import('../../core/operations/host-check-gate.js'),
          import('../../core/operations/install.js'),
          import('../output/run-steps.js'),
        ]);
      const skipChecks = parseSkipChecks(flags.skipCheck ?? []);
      const mode = chooseRendererMode(io, flags);
      const steps = stepDefinitions(INSTALL_STEPS, TITLES);
      // Ctrl-C or SIGTERM: before the switch the install stops (uploads resume next time);
      // after it, the host is put back on its previous release first.
      const resumeHint =
        'Run the same install again: what was uploaded stays, and the host runs what it ran before.';
      const result = await runInterruptible(io, resumeHint, (signal) =>
        runSteps(io, mode, steps, (onProgress) =>
          install({
            bundlePath,
            target,
            root: flags.root,
            ...installFlagOptions(flags, skipChecks),
            tls:
              flags.tlsCert !== undefined && flags.tlsKey !== undefined
                ? { certPath: flags.tlsCert, keyPath: flags.tlsKey }
                : undefined,
            exposeAddress: flags.exposeAddress,
            signal,
            onProgress,
          }),
        ),
      );
      if (flags.json) writeJson(io, result);
      else io.stdout.write(formatInstallResult(result));
    });
  withExamples(command, [
    {
      run: 'install out/apertus-8b-rag-1.0.0.tar --host root@10.0.0.5 --key keys/release.pub',
      does: 'over SSH: preflight, upload what the host lacks, switch, start, verify',
    },
    {
      run: 'install apertus-8b-rag-1.0.0.tar.parts.json --local --dry-run',
      does: 'on this machine, from a split bundle: the plan only, nothing changed',
    },
    {
      run: 'install out/demo-0.1.0.tar --host admin@gpu-01:2222 -i ~/.ssh/gpu --root /srv/apertus',
      does: 'another port, key and install root',
    },
    {
      run: 'install out/apertus-8b-rag-1.0.0.tar --host root@10.0.0.5 --tls-cert tls/gpu1/cert.pem --tls-key tls/gpu1/key.pem',
      does: "the gateway serves HTTPS with this certificate on the recipe's expose port",
    },
    {
      run: 'install out/apertus-8b-rag-1.0.0.tar --inventory hosts.yaml --limit rack-a --max-fail 25%',
      does: 'a canary host, then 5 at a time; stop once more than 25% failed',
    },
  ]);
}

/** The install flags one host and a fleet share, as the core's options. */
function installFlagOptions(flags: InstallFlags, skipChecks: CheckId[]) {
  return {
    trustKeyPath: flags.trustKey,
    allowUnsigned: flags.allowUnsigned,
    skipChecks,
    dryRun: flags.dryRun,
    fullVerify: flags.fullVerify,
    egressInterface: flags.countEgress,
    insecureHttp: flags.insecureHttp,
  };
}

async function installFleet(
  io: CliIO,
  bundlePath: string,
  flags: InstallFlags,
  hosts: Awaited<ReturnType<typeof inventoryTargetsOf>> & object,
): Promise<void> {
  const [{ parseMaxFail, parseSerial }, { parseSkipChecks }] = await Promise.all([
    import('../../core/operations/fleet-batches.js'),
    import('../../core/operations/host-check-gate.js'),
  ]);
  // Every flag is read before the bundle is verified: a typo fails in a second.
  const serial = flags.serial === undefined ? undefined : parseSerial(flags.serial);
  const maxFailPercent = flags.maxFail === undefined ? undefined : parseMaxFail(flags.maxFail);
  const skipChecks = parseSkipChecks(flags.skipCheck ?? []);
  const [{ fleetInstall }, { fleetProgressLines, formatFleetInstallReport }] = await Promise.all([
    import('../../core/operations/fleet-install.js'),
    import('../output/fleet-lines.js'),
  ]);
  const mode = chooseRendererMode(io, flags);
  // On a terminal, the live view (rows per host); in CI and pipes, plain lines; --json: nothing.
  const live =
    mode === 'live'
      ? (await import('../output/fleet-view.js')).fleetLiveView(
          io,
          hosts.map((h) => h.name),
        )
      : undefined;
  const lines = live ?? (mode === 'silent' ? undefined : fleetProgressLines(io));
  const resumeHint =
    'Run the same install again: hosts that finished upload nothing, and every host runs what it ran before or the new release, verified.';
  const report = await runInterruptible(io, resumeHint, (signal) =>
    fleetInstall({
      bundlePath,
      hosts,
      serial,
      forks: flags.forks,
      maxFailPercent,
      ...installFlagOptions(flags, skipChecks),
      signal,
      onProgress: lines?.run,
      onHostProgress: lines?.host,
    }),
  ).finally(() => live?.done());
  if (flags.json) writeJson(io, report);
  else io.stdout.write(formatFleetInstallReport(report));
  if (!report.ok) throw new ReportedFailure();
}

export function formatInstallResult(result: InstallResult): string {
  if (result.dryRun) {
    const { plan } = result;
    const lines = [
      `Plan for ${plan.bundle.name} ${plan.bundle.version} (${plan.bundle.manifestDigest})`,
      `  release   ${plan.release.dir}${plan.release.previous ? ` (replaces ${plan.release.previous})` : ''}`,
      `  blobs     ${plan.blobs.total} in the bundle, ${plan.blobs.present} already on the host`,
      `  upload    ${plan.uploads.length} blobs, ${formatBytes(plan.uploadBytes)}`,
      ...plan.uploads.map(
        (u) =>
          `            ${u.digest} ${formatBytes(u.size)}${u.resumeFrom ? ` (resume at ${u.resumeFrom})` : ''}`,
      ),
      `  disk      needs ${formatBytes(plan.diskNeededBytes)}, ${formatBytes(plan.diskAvailableBytes)} free`,
    ];
    return `${lines.join('\n')}\n`;
  }
  const lines = [
    `Installed ${result.bundle.name} ${result.bundle.version} on ${result.host.transport}`,
    `  release   ${result.release.dir}`,
    `  checked   ${result.preflight.results.length} host checks, ${result.preflight.results.filter((r) => r.status === 'warn').length} warnings${result.preflight.skipped.length ? `; SKIPPED failing ${result.preflight.skipped.map((c) => c.id).join(', ')}` : ''}`,
    `  uploaded  ${result.transfer.blobsUploaded} of ${result.transfer.blobsTotal} blobs, ${formatBytes(result.transfer.bytesUploaded)} in ${formatDuration(result.transfer.ms)}`,
    ...result.checks.map(
      (c) => `  ${c.status === 'ok' ? 'ok  ' : 'FAIL'}      ${c.id} ${c.service}: ${c.detail}`,
    ),
    `  report    ${result.path}`,
  ];
  return `${lines.join('\n')}\n`;
}
