/**
 * `apertus check`: probe a host in one round trip, then judge it against what it should
 * run. Results are data; nothing here prints or exits. `checkHosts` checks many hosts in
 * parallel, each with its own connection, and a host that cannot be reached is a failed
 * result, not an exception.
 */

import { byReportOrder, type CheckResult, type CheckStatus, worstStatus } from '../check/check-result.js';
import {
  checkComputeCapability,
  checkCuda,
  checkDriver,
  checkFit,
  checkGpu,
  checkGpuMemoryFree,
  checkMig,
  type FitSettings,
} from '../check/evaluate-gpu.js';
import {
  checkArch,
  checkClock,
  checkContainerRuntime,
  checkContainerToolkit,
  checkDisks,
  checkInstallRoot,
  checkLibc,
  checkMemory,
  checkOs,
  checkPorts,
} from '../check/evaluate-system.js';
import { isApertusError } from '../errors.js';
import type { ImageCuda } from '../gpu/cuda-driver.js';
import type { CpuFitReport, FitReport } from '../gpu/fit.js';
import type { GpuInventory } from '../gpu/gpu-inventory.js';
import type { Transport } from '../host/transport.js';
import { noProgress, type RunOptions } from '../progress.js';
import type { InstallTarget } from '../target/connect.js';
import { DEFAULT_HOST_ROOT, parseHostRoot } from '../target/layout.js';
import { type HostProbe, runProbe } from '../target/probe.js';
import { withHostSession } from '../target/session.js';
import { type CheckSubject, loadCheckSubject, type SubjectSource } from './check-subject.js';
import { offlineCheckResults } from './offline-gate.js';

export interface EvaluateOptions {
  subject?: CheckSubject | undefined;
  /** The CUDA of the runtime image (bundles carry no images yet, so it is given). */
  image?: ImageCuda | undefined;
  fit?: FitSettings | undefined;
  /** The operator's clock around the probe's round trip, for the skew check. */
  sentAtMs: number;
  receivedAtMs: number;
}

export interface HostEvaluation {
  results: CheckResult[];
  fit: Array<{ workload: string; report: FitReport }>;
  memory: Array<{ workload: string; report: CpuFitReport }>;
}

/** Judge probed facts; pure, so fixtures and live probes go through the same code. */
export function evaluateHost(probe: HostProbe, options: EvaluateOptions): HostEvaluation {
  const { subject } = options;
  const settings = options.fit ?? {};
  const memory = checkMemory(probe, subject);
  const fit = checkFit(probe.gpu, subject, settings);
  const results: CheckResult[] = [
    checkOs(probe),
    checkArch(probe, subject),
    checkLibc(probe, subject),
    checkClock(probe, options.sentAtMs, options.receivedAtMs),
    checkInstallRoot(probe),
    ...checkDisks(probe, subject),
    ...checkPorts(probe, subject),
    ...memory.results,
    checkGpu(probe.gpu, subject),
    checkDriver(probe.gpu, subject),
    checkCuda(probe.gpu, subject, options.image),
    ...checkComputeCapability(probe.gpu, subject),
    checkMig(probe.gpu),
    checkGpuMemoryFree(probe.gpu, subject, settings),
    ...fit.results,
    checkContainerRuntime(probe, subject),
    checkContainerToolkit(probe, subject),
    ...offlineCheckResults(subject?.offline ?? []),
  ].filter((r): r is CheckResult => r !== undefined);
  return { results: results.sort(byReportOrder), fit: fit.reports, memory: memory.reports };
}

/** The probe's facts in JSON-friendly form (sets and maps become counts and lists). */
export interface HostFactsSummary {
  os?: string;
  kernel?: string;
  arch?: string;
  libc?: string;
  user?: string;
  cpus?: number;
  memory?: { totalBytes?: number; availableBytes?: number };
  clockSkewMs?: number;
  root: {
    path: string;
    exists: boolean;
    writable: boolean;
    current: string | null;
    blobs: number;
    partialBlobs: number;
  };
  disks: HostProbe['disks'];
  listeningPorts?: number[];
  gpu: GpuInventory;
  containers: HostProbe['containers'];
}

function summarise(probe: HostProbe, sentAtMs: number, receivedAtMs: number): HostFactsSummary {
  const summary: HostFactsSummary = {
    root: {
      path: probe.root.path,
      exists: probe.root.exists,
      writable: probe.root.writable,
      current: probe.root.current,
      blobs: probe.root.blobs.size,
      partialBlobs: probe.root.partial.size,
    },
    disks: probe.disks,
    gpu: probe.gpu,
    containers: probe.containers,
  };
  if (probe.os?.prettyName) summary.os = probe.os.prettyName;
  if (probe.kernel) summary.kernel = probe.kernel;
  if (probe.arch) summary.arch = probe.arch;
  if (probe.libc) summary.libc = `${probe.libc.family} ${probe.libc.version ?? ''}`.trim();
  if (probe.user) summary.user = probe.user;
  if (probe.cpus) summary.cpus = probe.cpus;
  if (probe.memory) summary.memory = probe.memory;
  if (probe.clockSeconds !== undefined) {
    const host = probe.clockSeconds * 1000;
    summary.clockSkewMs = Math.round(
      host < sentAtMs ? host - sentAtMs : host > receivedAtMs ? host - receivedAtMs : 0,
    );
  }
  if (probe.listeningPorts) summary.listeningPorts = [...probe.listeningPorts].sort((a, b) => a - b);
  return summary;
}

export interface CheckHostOptions extends RunOptions, SubjectSource {
  /** Install root on the host; /var/lib/apertus by default. */
  root?: string | undefined;
  /** What to check for, loaded once by the caller (checkHosts does); else read from bundle/recipe/model. */
  subject?: CheckSubject | undefined;
  image?: ImageCuda | undefined;
  fit?: FitSettings | undefined;
  /** The operator's clock; tests pass their own. */
  now?: () => number;
}

export interface HostCheckReport {
  /** The host's name in the inventory, or its address. */
  host: string;
  /** How it was reached: 'ssh root@10.0.0.5:22' or 'local'. */
  transport: string;
  status: CheckStatus;
  results: CheckResult[];
  fit: HostEvaluation['fit'];
  memory: HostEvaluation['memory'];
  facts?: HostFactsSummary;
}

/** Probe one host over an open transport and judge it. */
export async function checkHost(
  transport: Transport,
  options: CheckHostOptions = {},
): Promise<HostCheckReport> {
  options.signal?.throwIfAborted();
  const subject = options.subject ?? (await loadCheckSubject(options, options));
  const root = options.root ?? DEFAULT_HOST_ROOT;
  const { probe, sentAtMs, receivedAtMs } = await runProbe(
    transport,
    { root },
    { ...(options.signal ? { signal: options.signal } : {}), ...(options.now ? { now: options.now } : {}) },
  );
  return judgeHost(transport.description, probe, { sentAtMs, receivedAtMs }, { ...options, subject });
}

/** The check's verdict on a probed host. */
function judgeHost(
  host: string,
  probe: HostProbe,
  probedAt: { sentAtMs: number; receivedAtMs: number },
  options: Pick<CheckHostOptions, 'subject' | 'image' | 'fit'>,
): HostCheckReport {
  const evaluation = evaluateHost(probe, {
    subject: options.subject,
    image: options.image,
    fit: options.fit,
    ...probedAt,
  });
  return {
    host,
    transport: host,
    status: worstStatus(evaluation.results),
    ...evaluation,
    facts: summarise(probe, probedAt.sentAtMs, probedAt.receivedAtMs),
  };
}

export interface CheckTarget {
  /** Shown in the report: the inventory name, or the address. */
  name: string;
  target: InstallTarget;
  root?: string | undefined;
  /** From the inventory: what install gives this host's gateway (its TLS files, its address). */
  gateway?: { tls?: { certPath: string; keyPath: string }; exposeAddress?: string } | undefined;
}

export interface ChecksReport {
  ok: boolean;
  status: CheckStatus;
  subject?: { kind: CheckSubject['kind']; name: string; workloads: string[] };
  hosts: HostCheckReport[];
}

/** Hosts checked at once; each holds one SSH connection for the duration of its probe. */
export const DEFAULT_CHECK_CONCURRENCY = 8;

export interface CheckHostsOptions extends Omit<CheckHostOptions, 'root'> {
  concurrency?: number;
}

/**
 * Check every target in parallel (up to `concurrency` at once). The subject is read once.
 * Progress: one step per host, `host:<name>`.
 */
export async function checkHosts(
  targets: readonly CheckTarget[],
  options: CheckHostsOptions = {},
): Promise<ChecksReport> {
  const onProgress = options.onProgress ?? noProgress;
  const subject = options.subject ?? (await loadCheckSubject(options, options));
  const reports: HostCheckReport[] = new Array(targets.length);
  let next = 0;
  const worker = async () => {
    while (next < targets.length) {
      const i = next++;
      const target = targets[i] as CheckTarget;
      reports[i] = await checkOne(target);
    }
  };
  const checkOne = async (target: CheckTarget): Promise<HostCheckReport> => {
    const step = `host:${target.name}`;
    onProgress({ step, status: 'start', detail: `Checking ${target.name}` });
    const unreachable = (error: unknown): HostCheckReport => {
      options.signal?.throwIfAborted();
      // Only our own errors (refused key, no route, dropped channel) describe the host; anything else is a bug.
      if (!isApertusError(error)) throw error;
      const result: CheckResult = {
        id: 'connect',
        status: 'fail',
        detail: error.message,
        ...(error.hint ? { hint: error.hint } : {}),
      };
      onProgress({ step, status: 'fail', detail: result.detail });
      return {
        host: target.name,
        transport:
          target.target.kind === 'local'
            ? 'local'
            : `ssh ${target.target.address}${target.target.jump && target.target.jump !== 'none' ? ` via ${target.target.jump}` : ''}`,
        status: 'fail',
        results: [result],
        fit: [],
        memory: [],
      };
    };
    try {
      // A read-only host session: the one probe, no lock, nothing written.
      const report = await withHostSession(
        {
          target: target.target,
          root: parseHostRoot(target.root ?? DEFAULT_HOST_ROOT),
          command: 'check',
          lock: false,
          probe: { system: true },
          signal: options.signal,
        },
        async (session) =>
          judgeHost(session.transport.description, session.probe, session.probedAt, { ...options, subject }),
      );
      const failed = report.results.filter((r) => r.status === 'fail').map((r) => r.id);
      onProgress({
        step,
        status: report.status === 'fail' ? 'fail' : 'ok',
        detail: failed.length > 0 ? `failed: ${[...new Set(failed)].join(', ')}` : report.status,
      });
      return { ...report, host: target.name };
    } catch (error) {
      return unreachable(error);
    }
  };
  await Promise.all(
    Array.from(
      { length: Math.max(1, Math.min(options.concurrency ?? DEFAULT_CHECK_CONCURRENCY, targets.length)) },
      worker,
    ),
  );
  const status = worstStatus(reports);
  return {
    ok: status !== 'fail',
    status,
    ...(subject
      ? {
          subject: {
            kind: subject.kind,
            name: subject.name,
            workloads: subject.workloads.map((w) => w.label),
          },
        }
      : {}),
    hosts: reports,
  };
}
