import type { EvalRun } from '../eval/run-eval.js';
import type { ServiceSpec } from '../layout/types.js';
import { serviceReport } from '../runtimes/registry.js';
import type { ServiceCheck } from '../runtimes/verify-services.js';
import type { VllmLaunchRecord } from '../runtimes/vllm/launch.js';
import type { TransferResult } from '../target/blob-store.js';
import type { LockHolder } from '../target/lock.js';
import type { HostTools } from '../target/preflight.js';
import type { Signer } from '../target/state.js';
import type { HostCheckOutcome } from './host-check-gate.js';
import type { InstallPlan } from './install-plan.js';

/** The install report: written on the host, printed with --json. Field names are a contract. */
export interface InstallReport {
  ok: boolean;
  /** Where the report was written on the host: reports/<audit seq>-install-<UTC stamp>.json. */
  path: string;
  /** The audit record that holds this report's hash. */
  record: { seq: number };
  startedAt: string;
  finishedAt: string;
  bundle: InstallPlan['bundle'];
  /** Who signed the bundle, as the host's trust store verified it; null with --allow-unsigned. */
  signer: Signer | null;
  /** How the host decided trust: its trusted keys, a key this install added (--trust-key), or none (--allow-unsigned). */
  trust: { mode: 'keys' | 'unsigned'; added: string | null; trusted: string[] };
  host: {
    transport: string;
    os: string;
    arch: string;
    user: string;
    hashTool: string;
    serviceManager: string;
  };
  /** A lock left by a command that died (its process gone), which this install took over. */
  tookOverLock: LockHolder | null;
  release: { dir: string; previous: string | null };
  transfer: {
    blobsTotal: number;
    blobsUploaded: number;
    bytesTotal: number;
    bytesUploaded: number;
    ms: number;
    /** Blobs the host held damaged (another size, or another hash on first use), uploaded again. */
    replaced: Array<{ digest: string; reason: string }>;
  };
  checks: ServiceCheck[];
  /** The host check that gated the install, and the failed checks the operator skipped. */
  preflight: HostCheckOutcome;
  /** Why the services could not be started at all, when that is what failed. */
  activateError: string | null;
  /** The install was stopped (Ctrl-C, SIGTERM) while it changed the host, and put the host back. */
  interrupted: boolean;
  /** Packets the host sent through its sink interface during verification (`--count-egress`); null when not counted. */
  offline: { interface: string; packets: number } | null;
  rollback: { to: string | null; healthy: boolean } | null;
  /** The evaluation sets' run after verification (metrics, thresholds missed); null when none ran. */
  eval: EvalRun | null;
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
  host: { transport: string; os: string; arch: string; user: string; tools: HostTools };
  signer: Signer | null;
  trust: InstallReport['trust'];
  tookOverLock: LockHolder | null;
  transfer: TransferResult;
  replaced: InstallReport['transfer']['replaced'];
  checks: ServiceCheck[];
  preflight: HostCheckOutcome;
  activateError: string | null;
  interrupted: boolean;
  offline: InstallReport['offline'];
  rollback: InstallReport['rollback'];
  services: ServiceSpec[];
  eval: EvalRun | null;
}

export function buildInstallReport(input: ReportInput, where: { path: string; seq: number }): InstallReport {
  return {
    ok: input.ok,
    path: where.path,
    record: { seq: where.seq },
    startedAt: input.startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    bundle: input.plan.bundle,
    signer: input.signer,
    trust: input.trust,
    host: {
      transport: input.host.transport,
      os: input.host.os,
      arch: input.host.arch,
      user: input.host.user,
      hashTool: input.host.tools.hashTool,
      serviceManager: input.host.tools.serviceManager,
    },
    tookOverLock: input.tookOverLock,
    release: { dir: input.plan.release.dir, previous: input.plan.release.previous },
    transfer: {
      blobsTotal: input.plan.blobs.total,
      blobsUploaded: input.transfer.blobs,
      bytesTotal: input.plan.blobs.totalBytes,
      bytesUploaded: input.transfer.bytes,
      ms: input.transfer.ms,
      replaced: input.replaced,
    },
    checks: input.checks,
    preflight: input.preflight,
    activateError: input.activateError,
    interrupted: input.interrupted,
    offline: input.offline,
    rollback: input.rollback,
    eval: input.eval,
    services: input.services.map(serviceReport),
  };
}
