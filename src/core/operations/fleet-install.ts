/**
 * `install --inventory`: one bundle onto many hosts, Ansible-style. The bundle is verified
 * once for the run; each host then runs the single-host install (its own session, lock,
 * rollback and audit record) with that prepared bundle. Hosts go in batches (fleet-batches.ts):
 * a batch's hosts in parallel, and the next batch only while the failures stay within
 * --max-fail. Every host ends as one result: ok, failed (rolled back as a single install
 * is), or not-started. Nothing here prints; per-host progress goes to onHostProgress.
 */
import type { CheckId } from '../check/check-result.js';
import { ApertusError, isApertusError } from '../errors.js';
import { noProgress, type ProgressEvent, type RunOptions } from '../progress.js';
import {
  cutBatches,
  DEFAULT_FORKS,
  defaultSerial,
  overMaxFail,
  planBatches,
  type SerialItem,
} from './fleet-batches.js';
import { type FleetHost, type HostError, hostError, runPool, targetAddress } from './fleet-hosts.js';
import {
  type InstallResult,
  installPrepared,
  prepareInstallBundle,
  readInstallTls,
  readInstallTrustKey,
} from './install.js';
import type { InstallReport } from './install-report.js';

export interface FleetInstallOptions extends RunOptions {
  bundlePath: string;
  hosts: readonly FleetHost[];
  /** Batch sizes; default one canary host, then batches of `forks`. */
  serial?: readonly SerialItem[] | undefined;
  /** Hosts at work at once, within a batch; default 5. */
  forks?: number | undefined;
  /** The share of hosts (0-100) that may fail before no further batch starts; default 0. */
  maxFailPercent?: number | undefined;
  trustKeyPath?: string | undefined;
  allowUnsigned?: boolean | undefined;
  skipChecks?: CheckId[] | undefined;
  dryRun?: boolean | undefined;
  /** Hash every file of the bundle before any host is touched (see InstallOptions.fullVerify). */
  fullVerify?: boolean | undefined;
  healthTimeoutMs?: number | undefined;
  egressInterface?: string | undefined;
  /** Serve every host's gateway in plain HTTP (labs only; install --insecure-http). */
  insecureHttp?: boolean | undefined;
  /** Each host's install steps, as a single install reports them, tagged with the host. */
  onHostProgress?: ((host: string, event: ProgressEvent) => void) | undefined;
}

export type FleetHostStatus = 'ok' | 'failed' | 'not-started';

export interface FleetHostResult {
  host: string;
  address: string;
  root: string | null;
  status: FleetHostStatus;
  /** 1-based; null for a host of a batch that never started. */
  batch: number | null;
  ms: number | null;
  error: HostError | null;
  /** Where a failed install left the host: the release it went back to (null: none), and whether that answers. */
  rollback: InstallReport['rollback'];
  /** The host's own install report (or, with --dry-run, its plan); null when there is none. */
  report: InstallResult | InstallReport | null;
}

export interface FleetInstallReport {
  ok: boolean;
  bundle: { name: string; version: string; manifestDigest: string };
  dryRun: boolean;
  forks: number;
  maxFailPercent: number;
  batches: Array<{ batch: number; hosts: string[]; status: 'ok' | 'failed' | 'not-started' }>;
  hosts: FleetHostResult[];
  summary: {
    hosts: number;
    ok: number;
    failed: number;
    notStarted: number;
    rolledBack: number;
    /** Why batches were left out: the failures went over --max-fail, or the run was interrupted. */
    stoppedBy: 'max-fail' | 'interrupted' | null;
  };
}

export async function fleetInstall(options: FleetInstallOptions): Promise<FleetInstallReport> {
  const forks = options.forks ?? DEFAULT_FORKS;
  const maxFailPercent = options.maxFailPercent ?? 0;
  const onHostProgress = options.onHostProgress ?? (() => {});
  if (options.hosts.length === 0)
    throw new ApertusError('fleet-no-hosts', 'No host to install on.', {
      hint: 'List hosts in the inventory, or widen --limit.',
    });
  const trustKey = await readInstallTrustKey(options);
  // Every host's TLS files are read and checked before the bundle is: a wrong path fails in a second.
  const gateways = new Map<string, Awaited<ReturnType<typeof readInstallTls>>>();
  for (const host of options.hosts) {
    const tls = await readInstallTls({
      tls: host.gateway?.tls,
      insecureHttp: options.insecureHttp,
      exposeAddress: host.gateway?.exposeAddress,
    }).catch((error: unknown) => {
      if (isApertusError(error)) error.message = `${host.name}: ${error.message}`;
      throw error;
    });
    gateways.set(host.name, tls);
  }
  const prepared = await prepareInstallBundle(options.bundlePath, {
    fullVerify: options.fullVerify,
    ...(options.signal ? { signal: options.signal } : {}),
    onProgress: options.onProgress ?? noProgress,
  });
  try {
    const { config, manifestDigest } = prepared.bundle;
    const sizes = planBatches(options.hosts.length, options.serial ?? defaultSerial(forks));
    const batches = cutBatches(options.hosts, sizes);
    const results = new Map<string, FleetHostResult>();
    const notStarted = (host: FleetHost): FleetHostResult => ({
      host: host.name,
      address: targetAddress(host.target),
      root: host.root ?? null,
      status: 'not-started',
      batch: null,
      ms: null,
      error: null,
      rollback: null,
      report: null,
    });
    let stoppedBy: FleetInstallReport['summary']['stoppedBy'] = null;
    const batchStatus: FleetInstallReport['batches'] = [];

    for (const [i, batch] of batches.entries()) {
      const failedSoFar = [...results.values()].filter((r) => r.status === 'failed').length;
      if (stoppedBy === null && options.signal?.aborted) stoppedBy = 'interrupted';
      if (stoppedBy === null && overMaxFail(failedSoFar, options.hosts.length, maxFailPercent))
        stoppedBy = 'max-fail';
      if (stoppedBy !== null) {
        for (const host of batch) results.set(host.name, notStarted(host));
        batchStatus.push({ batch: i + 1, hosts: batch.map((h) => h.name), status: 'not-started' });
        continue;
      }
      const done = await runPool(batch, forks, async (host) => {
        const started = Date.now();
        const progress = (event: ProgressEvent) => onHostProgress(host.name, event);
        progress({ step: 'host', status: 'start', detail: `batch ${i + 1}` });
        const base = { ...notStarted(host), batch: i + 1 };
        try {
          const report = await installPrepared(prepared, {
            target: host.target,
            root: host.root,
            trustKey,
            allowUnsigned: options.allowUnsigned,
            skipChecks: options.skipChecks,
            dryRun: options.dryRun,
            healthTimeoutMs: options.healthTimeoutMs,
            egressInterface: options.egressInterface,
            insecureHttp: options.insecureHttp,
            tls: gateways.get(host.name),
            exposeAddress: host.gateway?.exposeAddress,
            signal: options.signal,
            onProgress: progress,
          });
          progress({ step: 'host', status: 'ok', detail: 'installed and verified' });
          return { ...base, status: 'ok' as const, ms: Date.now() - started, report };
        } catch (error) {
          // A host's failure is its result. Even a bug (not an ApertusError) stays this host's:
          // throwing would leave the batch's other hosts mid-install with nobody waiting on them.
          const details = isApertusError(error) ? error.details : undefined;
          const report = (details as { report?: InstallReport } | undefined)?.report ?? null;
          progress({ step: 'host', status: 'fail', detail: hostError(error).code });
          return {
            ...base,
            status: 'failed' as const,
            ms: Date.now() - started,
            error: hostError(error),
            rollback: report?.rollback ?? null,
            report,
          };
        }
      });
      for (const result of done) results.set(result.host, result);
      batchStatus.push({
        batch: i + 1,
        hosts: batch.map((h) => h.name),
        status: done.every((r) => r.status === 'ok') ? 'ok' : 'failed',
      });
    }

    const hosts = options.hosts.map((h) => results.get(h.name) as FleetHostResult);
    const count = (status: FleetHostStatus) => hosts.filter((h) => h.status === status).length;
    const report: FleetInstallReport = {
      ok: hosts.every((h) => h.status === 'ok'),
      bundle: { name: config.name, version: config.version, manifestDigest },
      dryRun: options.dryRun ?? false,
      forks,
      maxFailPercent,
      batches: batchStatus,
      hosts,
      summary: {
        hosts: hosts.length,
        ok: count('ok'),
        failed: count('failed'),
        notStarted: count('not-started'),
        rolledBack: hosts.filter((h) => h.rollback !== null).length,
        stoppedBy,
      },
    };
    if (stoppedBy === 'interrupted' || options.signal?.aborted)
      throw new ApertusError(
        'fleet-interrupted',
        `The fleet install was interrupted: ${report.summary.ok} hosts ok, ${report.summary.failed} failed (put back), ${report.summary.notStarted} not started.`,
        {
          kind: 'operation',
          hint: 'Run the same install again: hosts already on this release upload nothing and verify again.',
          details: { report: { ...report, summary: { ...report.summary, stoppedBy: 'interrupted' } } },
        },
      );
    return report;
  } finally {
    await prepared.close();
  }
}
