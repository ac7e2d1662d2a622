import type { CheckId } from '../check/check-result.js';
import { ApertusError, isApertusError } from '../errors.js';
import type { Transport } from '../host/transport.js';
import { openBundle } from '../layout/bundle-reader.js';
import { loadBundle } from '../layout/load-bundle.js';
import { blobPath } from '../layout/names.js';
import type { ServiceSpec, VerifySpec } from '../layout/types.js';
import { noProgress, type RunOptions } from '../progress.js';
import { verifyBundle } from '../verify/verify-bundle.js';
import { gateOnHostCheck, type HostCheckOutcome } from './host-check-gate.js';
import { DEFAULT_HOST_ROOT, type HostLayout, hostLayout } from './host-layout.js';
import { lockHost } from './host-lock.js';
import { type InstallPlan, planInstall } from './install-plan.js';
import { type InstallReport, writeInstallReport } from './install-report.js';
import { loadImages } from './load-images.js';
import { type HostFacts, type HostSummary, probeHost, summariseHost } from './preflight.js';
import {
  assertPortsFree,
  readRelease,
  rollBack,
  startServices,
  stopServices,
  switchCurrent,
} from './release-control.js';
import { stageRelease } from './stage.js';
import { type InstallTarget, openTarget } from './target.js';
import { transferBlobs } from './transfer.js';
import { type ServiceCheck, verifyService, waitForHealth } from './verify-services.js';

/** Step ids reported through onProgress, in order; the CLI gives them titles. */
export const INSTALL_STEPS = [
  'verify-bundle',
  'connect',
  'check',
  'preflight',
  'transfer',
  'stage',
  'images',
  'activate',
  'verify.health',
  'verify.models',
  'verify.chat',
  'verify.embeddings',
  'rollback',
  'report',
] as const;
export type InstallStep = (typeof INSTALL_STEPS)[number];

export interface InstallOptions extends RunOptions {
  bundlePath: string;
  target: InstallTarget;
  /** Install root on the host; /var/lib/apertus by default. */
  root?: string | undefined;
  /** Minisign public key the bundle's signature must verify with. */
  publicKeyPath?: string | undefined;
  /** Compute and return the plan; change nothing on the host. */
  dryRun?: boolean | undefined;
  /** Failed preflight checks to accept anyway (`--skip-check`); the report records them. */
  skipChecks?: CheckId[] | undefined;
  /** How long a started service may take to answer /health. */
  healthTimeoutMs?: number | undefined;
}

export type InstallResult =
  | { dryRun: true; plan: InstallPlan; host: HostSummary; check: HostCheckOutcome }
  | ({ dryRun: false } & InstallReport);

/**
 * Verify the bundle, connect, probe, plan, upload what the host lacks, stage the release
 * from the blob store, switch `current`, start and verify the services; roll back to the
 * previous release (or to nothing) when any check fails. Throws ApertusError on failure,
 * with the report as details once the host was touched.
 */
export async function install(options: InstallOptions): Promise<InstallResult> {
  const onProgress = options.onProgress ?? noProgress;
  const { signal } = options;
  const startedAt = new Date();
  const emit = (step: InstallStep, status: 'start' | 'ok' | 'fail' | 'skip' | 'info', detail?: string) =>
    onProgress({ step, status, detail });

  emit('verify-bundle', 'start');
  const verification = await verifyBundle(options.bundlePath, {
    publicKeyPath: options.publicKeyPath,
    signal,
    onProgress: (event) => onProgress({ ...event, step: 'verify-bundle' }),
  });
  const bad = verification.results.filter((r) => r.status !== 'ok' && r.status !== 'unsigned');
  if (!verification.ok || bad.length > 0) {
    emit('verify-bundle', 'fail', bad.map((r) => `${r.subject}: ${r.status}`).join('; '));
    throw new ApertusError(
      'bundle-invalid',
      `The bundle failed verification; nothing was sent to the host:\n${bad.map((r) => `  ${r.subject}: ${r.status}${r.detail ? ` (${r.detail})` : ''}`).join('\n')}`,
      {
        kind: 'operation',
        hint: 'Copy the bundle (or the bad part) again from its source medium, then run `apertus verify` on it.',
        details: { verification: verification.results },
      },
    );
  }
  emit(
    'verify-bundle',
    'ok',
    verification.signed ? 'checksums and signature ok' : 'checksums ok (not signed)',
  );

  const reader = await openBundle(options.bundlePath);
  let transport: Transport | undefined;
  try {
    const bundle = await loadBundle(reader);

    emit('connect', 'start');
    transport = await openTarget(options.target, { signal, onProgress });
    emit('connect', 'ok', transport.description);

    const layout = hostLayout(options.root ?? DEFAULT_HOST_ROOT);
    emit('check', 'start');
    const hostCheck = await gateOnHostCheck(transport, {
      bundlePath: options.bundlePath,
      root: layout.root,
      skip: options.skipChecks ?? [],
      signal,
    }).catch((error: unknown) => {
      emit('check', 'fail');
      throw error;
    });
    const warnings = hostCheck.results.filter((r) => r.status === 'warn').length;
    emit(
      'check',
      'ok',
      `${hostCheck.results.length} checks, ${warnings} warnings${hostCheck.skipped.length ? `, skipped ${hostCheck.skipped.map((s) => s.id).join(', ')}` : ''}`,
    );

    emit('preflight', 'start');
    const facts = await probeHost(transport, layout);
    const plan = planInstall(
      {
        config: bundle.config,
        manifestDigest: bundle.manifestDigest,
        components: bundle.components,
        blobs: bundle.blobs,
      },
      facts,
      layout,
    );
    if (plan.diskNeededBytes > plan.diskAvailableBytes) {
      emit('preflight', 'fail', 'not enough disk');
      throw new ApertusError(
        'host-disk-full',
        `${transport.description} has ${plan.diskAvailableBytes} bytes free under ${layout.root}; the install needs ${plan.diskNeededBytes}.`,
        {
          kind: 'operation',
          hint: `Free space on the filesystem of ${layout.root}, or pass --root on a larger one.`,
        },
      );
    }
    emit(
      'preflight',
      'ok',
      `${facts.os}/${facts.arch}, ${facts.serviceManager}, hashes with ${facts.hashTool}`,
    );
    if (options.dryRun) return { dryRun: true, plan, host: summariseHost(facts), check: hostCheck };

    const unlock = await lockHost(
      transport,
      layout,
      `apertus install of ${bundle.config.name} ${bundle.config.version} since ${startedAt.toISOString()}`,
    );
    try {
      return await applyInstall({
        transport,
        layout,
        facts,
        plan,
        services: bundle.config.services,
        verifySpec: bundle.config.verify,
        hostCheck,
      });
    } finally {
      await unlock();
    }
  } finally {
    await transport?.close();
    await reader.close();
  }

  async function applyInstall(ctx: {
    transport: Transport;
    layout: HostLayout;
    facts: HostFacts;
    plan: InstallPlan;
    services: ServiceSpec[];
    verifySpec: VerifySpec;
    hostCheck: HostCheckOutcome;
  }): Promise<InstallResult> {
    const { transport, layout, facts, plan, services, verifySpec, hostCheck } = ctx;
    emit('transfer', 'start', `${plan.uploads.length} of ${plan.blobs.total} blobs`);
    const transfer = await transferBlobs({
      transport,
      layout,
      hashTool: facts.hashTool,
      uploads: plan.uploads,
      openBlob: (digest, start) => reader.createReadStream(blobPath(digest), { start }),
      signal,
      onProgress,
    });
    emit(
      'transfer',
      'ok',
      `${transfer.blobs} blobs, ${transfer.bytes} bytes uploaded; ${plan.blobs.present} already on the host`,
    );

    emit('stage', 'start');
    const staged = await stageRelease(transport, layout, plan, services, signal);
    emit(
      'stage',
      'ok',
      staged.created ? `${plan.release.dir}` : `${plan.release.dir} (kept, already complete)`,
    );

    if (plan.images.length > 0) {
      emit('images', 'start', `${plan.images.length} images`);
      const loaded = await loadImages(transport, layout, plan, signal);
      emit('images', 'ok', loaded.join(', '));
    }

    const previous = plan.release.previous
      ? await readRelease(transport, layout, plan.release.previous)
      : null;
    const checks: ServiceCheck[] = [];
    let rolledBack: InstallReport['rollback'] = null;

    emit('activate', 'start');
    const healthTimeoutMs = options.healthTimeoutMs ?? 60_000;
    let startError: string | null = null;
    try {
      await stopServices(transport, layout, previous ? previous.services : services);
      await assertPortsFree(transport, services);
      await switchCurrent(transport, layout, plan.release.linkTarget);
      await startServices(transport, layout, plan.release.dir, services, facts.serviceManager);
      emit('activate', 'ok', `current -> ${plan.release.linkTarget}`);
    } catch (error) {
      // A service that cannot even be started is a failed verification: roll back the same way.
      startError = isApertusError(error) ? `${error.code}: ${error.message}` : String(error);
      emit('activate', 'fail', startError);
    }

    if (startError === null) {
      for (const service of services) {
        const health = await waitForHealth(transport, service, healthTimeoutMs, signal);
        checks.push(health);
        if (health.status === 'ok')
          checks.push(...(await verifyService(transport, service, verifySpec, signal)));
      }
    }
    for (const id of ['verify.health', 'verify.models', 'verify.chat', 'verify.embeddings'] as const) {
      const mine = checks.filter((c) => c.id === id);
      const failed = mine.find((c) => c.status === 'fail');
      if (mine.length === 0) emit(id, 'skip', 'not run');
      else emit(id, failed ? 'fail' : 'ok', (failed ?? mine[0])?.detail);
    }
    const ok = startError === null && checks.every((c) => c.status === 'ok');

    if (!ok) {
      emit('rollback', 'start');
      rolledBack = await rollBack({
        transport,
        layout,
        failed: {
          dir: plan.release.dir,
          linkTarget: plan.release.linkTarget,
          services,
          created: staged.created,
        },
        previous:
          previous && plan.release.previous ? { ...previous, linkTarget: plan.release.previous } : null,
        manager: facts.serviceManager,
        waitHealthy: (service) => waitForHealth(transport, service, healthTimeoutMs, signal),
      });
      emit(
        'rollback',
        'ok',
        rolledBack.to
          ? `restored ${rolledBack.to}${rolledBack.healthy ? ', serving' : ', NOT healthy'}`
          : 'no previous release: removed the new one',
      );
    }

    emit('report', 'start');
    const report = await writeInstallReport(transport, layout, {
      ok,
      startedAt,
      plan,
      facts,
      transport: transport.description,
      transfer,
      checks,
      preflight: hostCheck,
      activateError: startError,
      rollback: rolledBack,
      services,
    });
    emit('report', 'ok', report.path);
    if (!ok) {
      const failures = [
        ...(startError ? [`activate: ${startError}`] : []),
        ...checks.filter((c) => c.status === 'fail').map((c) => `${c.id} (${c.service}): ${c.detail}`),
      ];
      throw new ApertusError(
        'install-verification-failed',
        `The services of ${plan.bundle.name} ${plan.bundle.version} failed verification on ${transport.description}: ${failures.join('; ')}. ${rolledBack?.to ? `Rolled back to ${rolledBack.to}.` : 'The new release was removed.'}`,
        {
          kind: 'operation',
          hint: `Read the service log under ${layout.logs} on the host, and the report ${report.path}.`,
          details: { report },
        },
      );
    }
    return { dryRun: false, ...report };
  }
}
