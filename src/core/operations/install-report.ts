import path from 'node:path/posix';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import type { ServiceSpec } from '../layout/types.js';
import { serviceReport } from '../runtimes/registry.js';
import type { ServiceCheck } from '../runtimes/verify-services.js';
import type { VllmLaunchRecord } from '../runtimes/vllm/launch.js';
import type { TransferResult } from '../target/blob-store.js';
import type { HostLayout } from '../target/layout.js';
import type { HostFacts } from '../target/preflight.js';
import { writeHostStateScript } from '../target/state.js';
import type { HostCheckOutcome } from './host-check-gate.js';
import type { InstallPlan } from './install-plan.js';

/** The install report: written on the host, printed with --json. Field names are a contract. */
export interface InstallReport {
  ok: boolean;
  /** Where the report was written on the host. */
  path: string;
  startedAt: string;
  finishedAt: string;
  bundle: InstallPlan['bundle'];
  host: {
    transport: string;
    os: string;
    arch: string;
    user: string;
    hashTool: string;
    serviceManager: string;
  };
  release: { dir: string; previous: string | null };
  transfer: {
    blobsTotal: number;
    blobsUploaded: number;
    bytesTotal: number;
    bytesUploaded: number;
    ms: number;
  };
  checks: ServiceCheck[];
  /** The host check that gated the install, and the failed checks the operator skipped. */
  preflight: HostCheckOutcome;
  /** Why the services could not be started at all, when that is what failed. */
  activateError: string | null;
  /** Packets the host sent through its sink interface during verification (`--count-egress`); null when not counted. */
  offline: { interface: string; packets: number } | null;
  rollback: { to: string | null; healthy: boolean } | null;
  services: Array<{
    name: string;
    port: number;
    modelId: string;
    /** Container services: the image reference the engine ran. */
    image?: string;
    /** vLLM services: the launch flags install chose for this host, and where each came from. */
    vllm?: VllmLaunchRecord;
  }>;
}

export interface ReportInput {
  ok: boolean;
  startedAt: Date;
  plan: InstallPlan;
  facts: HostFacts;
  transport: string;
  transfer: TransferResult;
  checks: ServiceCheck[];
  preflight: HostCheckOutcome;
  activateError: string | null;
  offline: InstallReport['offline'];
  rollback: InstallReport['rollback'];
  services: ServiceSpec[];
}

/** `<root>/reports/<kind>-<UTC stamp>-<name>-<version>.json`: sorted by time, named for what ran. */
export function reportFilePath(
  layout: HostLayout,
  kind: 'install' | 'rollback',
  at: Date,
  bundle: { name: string; version: string },
): string {
  const stamp = at
    .toISOString()
    .replaceAll(':', '')
    .replace(/\.\d+Z$/, 'Z');
  return path.join(layout.reports, `${kind}-${stamp}-${bundle.name}-${bundle.version}.json`);
}

/** The report file's exact bytes (the install audit record holds their hash). */
export function installReportText(report: InstallReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

/** Writes the report under `reports/` and, when the install stands, `state.json`. */
export async function writeInstallReport(
  transport: Transport,
  layout: HostLayout,
  input: ReportInput,
): Promise<InstallReport> {
  const finishedAt = new Date();
  const reportPath = reportFilePath(layout, 'install', finishedAt, input.plan.bundle);
  const report: InstallReport = {
    ok: input.ok,
    path: reportPath,
    startedAt: input.startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    bundle: input.plan.bundle,
    host: {
      transport: input.transport,
      os: input.facts.os,
      arch: input.facts.arch,
      user: input.facts.user,
      hashTool: input.facts.hashTool,
      serviceManager: input.facts.serviceManager,
    },
    release: { dir: input.plan.release.dir, previous: input.plan.release.previous },
    transfer: {
      blobsTotal: input.plan.blobs.total,
      blobsUploaded: input.transfer.blobs,
      bytesTotal: input.plan.blobs.totalBytes,
      bytesUploaded: input.transfer.bytes,
      ms: input.transfer.ms,
    },
    checks: input.checks,
    preflight: input.preflight,
    activateError: input.activateError,
    offline: input.offline,
    rollback: input.rollback,
    services: input.services.map(serviceReport),
  };

  const q = (value: string) => shellQuote([value]);
  const lines = [
    'set -eu',
    `mkdir -p ${q(layout.reports)}`,
    `printf '%s' ${q(installReportText(report))} > ${q(reportPath)}`,
  ];
  if (input.ok) {
    lines.push(
      ...writeHostStateScript(layout, {
        current: { ...input.plan.bundle, release: input.plan.release.linkTarget, report: reportPath },
        previous: input.plan.release.previous,
        updatedAt: report.finishedAt,
      }),
    );
  }
  await transport.exec('sh -s', { stdin: `${lines.join('\n')}\n` });
  return report;
}
