import type { CheckId } from '../check/check-result.js';
import { ApertusError, isApertusError } from '../errors.js';
import { blobPath } from '../layout/names.js';
import { noProgress, type RunOptions } from '../progress.js';
import type { HostProvision } from '../runtimes/adapter.js';
import { listenAddress } from '../runtimes/gateway/spec.js';
import { readTlsPair } from '../runtimes/gateway/tls-files.js';
import { planLaunches } from '../runtimes/launch-plan.js';
import { preflightServices, provisionServices } from '../runtimes/lifecycle.js';
import { readPublicKey } from '../sign/keys.js';
import { type TransferResult, transferBlobs } from '../target/blob-store.js';
import type { InstallTarget } from '../target/connect.js';
import { isNoSpace, noSpaceError } from '../target/disk.js';
import { readTxPackets } from '../target/egress-counter.js';
import { loadImages } from '../target/images.js';
import { DEFAULT_HOST_ROOT, parseHostRoot } from '../target/layout.js';
import { assertHostUsable } from '../target/preflight.js';
import { type HostSession, sha256Hex, withHostSession } from '../target/session.js';
import { stageRelease } from '../target/stage.js';
import type { HostState } from '../target/state.js';
import { addTrustedKeyScript, trustedKeys } from '../target/trust-store.js';
import { checkHostPython, createVenvs, wheelsVenvs } from '../target/venvs.js';
import { assertDeltaBaseOnHost } from './delta-base-gate.js';
import { gateOnHostCheck, type HostCheckOutcome } from './host-check-gate.js';
import { type ApplyContext, activateAndVerify, type Emit, VERIFY_STEPS } from './install-activate.js';
import { type InstallPlan, planInstall } from './install-plan.js';
import type { InstallReport, ReportInput } from './install-report.js';
import { decideTrust, type TrustDecision } from './install-trust.js';
import { type PreparedBundle, prepareBundle } from './prepare-bundle.js';

/** Step ids reported through onProgress, in order; the CLI gives them titles. */
export const INSTALL_STEPS = [
  'verify-bundle',
  'connect',
  'trust',
  'check',
  'preflight',
  'transfer',
  'stage',
  'images',
  'wheels',
  'activate',
  ...VERIFY_STEPS,
  'rollback',
  'report',
] as const;
export type InstallStep = (typeof INSTALL_STEPS)[number];

export interface InstallOptions extends RunOptions {
  bundlePath: string;
  target: InstallTarget;
  /** Install root on the host; /var/lib/apertus by default. */
  root?: string | undefined;
  /** The first signing key a host with none trusts (a minisign .pub file); recorded. */
  trustKeyPath?: string | undefined;
  /** Install on a host that trusts no key without a signature check (labs); recorded and warned about. */
  allowUnsigned?: boolean | undefined;
  /** Compute and return the plan; change nothing on the host. */
  dryRun?: boolean | undefined;
  /**
   * Hash every file of the bundle here before any host is touched. By default only the
   * metadata and the signed list are checked first: each blob sent is hashed as it travels
   * (on both ends), and a blob a host already has is re-hashed on the host before it is linked.
   */
  fullVerify?: boolean | undefined;
  /** Failed preflight checks to accept anyway (`--skip-check`); the report records them. */
  skipChecks?: CheckId[] | undefined;
  /** How long a started service may take to answer /health. */
  healthTimeoutMs?: number | undefined;
  /**
   * An interface on the host that every route out leads to (a sink): the packets it sends
   * while services start and are verified are counted, and verification fails unless 0.
   */
  egressInterface?: string | undefined;
  /** The gateway's TLS certificate and key for this host (PEM files on this machine); uploaded 0600, never bundled. */
  tls?: { certPath: string; keyPath: string } | undefined;
  /** Serve the gateway in plain HTTP (labs only); recorded in the release, warned about by `status`. */
  insecureHttp?: boolean | undefined;
  /** The address the gateway binds on this host, instead of the recipe's. */
  exposeAddress?: string | undefined;
}

export interface InstallDryRun {
  dryRun: true;
  plan: InstallPlan;
  host: {
    transport: string;
    user: string;
    arch: string;
    hashTool: string;
    serviceManager: string;
    blobsPresent: number;
    partialUploads: number;
  };
  check: HostCheckOutcome;
  /** How the host would judge the bundle's signature. */
  trust: Pick<TrustDecision, 'mode' | 'signer' | 'trusted'> & { add: string | null };
}

export type InstallResult = InstallDryRun | ({ dryRun: false } & InstallReport);

/** The signing key a first install names, read once per run: a wrong path fails in a second. */
export type TrustKey = Awaited<ReturnType<typeof readPublicKey>>;

/** What one host's install takes once the bundle is prepared (a fleet run shares one). */
export interface HostInstallOptions extends Omit<InstallOptions, 'bundlePath' | 'trustKeyPath' | 'tls'> {
  trustKey?: TrustKey | undefined;
  /** The TLS files' PEM text, read once (readInstallTls). */
  tls?: { cert: string; key: string } | undefined;
}

/** Reads --tls-cert and --tls-key on this machine and checks them against --insecure-http, before anything else. */
export async function readInstallTls(
  options: Pick<InstallOptions, 'tls' | 'insecureHttp' | 'exposeAddress'>,
): Promise<HostInstallOptions['tls']> {
  if (options.exposeAddress !== undefined && !listenAddress.safeParse(options.exposeAddress).success) {
    throw new ApertusError('usage', `--expose-address "${options.exposeAddress}" is not an IP address.`, {
      hint: 'Give the IPv4 or IPv6 address the gateway binds on the host, e.g. 10.0.0.5 (0.0.0.0 for all).',
    });
  }
  if (options.tls === undefined) return undefined;
  if (options.insecureHttp) {
    throw new ApertusError('usage', '--insecure-http and --tls-cert exclude each other.', {
      hint: 'Serve HTTPS with --tls-cert and --tls-key, or plain HTTP with --insecure-http (labs only).',
    });
  }
  return readTlsPair(options.tls.certPath, options.tls.keyPath);
}

/** Reads --trust-key and checks it against --allow-unsigned, before the bundle is verified. */
export async function readInstallTrustKey(
  options: Pick<InstallOptions, 'trustKeyPath' | 'allowUnsigned'>,
): Promise<TrustKey | undefined> {
  const trustKey = options.trustKeyPath === undefined ? undefined : await readPublicKey(options.trustKeyPath);
  if (trustKey && options.allowUnsigned) {
    throw new ApertusError('usage', '--trust-key and --allow-unsigned exclude each other.', {
      hint: 'Name the key the bundle is signed with (--trust-key), or install unsigned on a lab host (--allow-unsigned).',
    });
  }
  return trustKey;
}

/** Verifies the bundle once for the run, reporting it as the 'verify-bundle' step. */
export async function prepareInstallBundle(
  bundlePath: string,
  options: RunOptions & Pick<InstallOptions, 'fullVerify'>,
): Promise<PreparedBundle> {
  const onProgress = options.onProgress ?? noProgress;
  onProgress({ step: 'verify-bundle', status: 'start' });
  const prepared = await prepareBundle(bundlePath, {
    ...(options.signal ? { signal: options.signal } : {}),
    onProgress,
    step: 'verify-bundle',
    deferContents: !options.fullVerify,
  }).catch((error: unknown) => {
    onProgress({
      step: 'verify-bundle',
      status: 'fail',
      detail: isApertusError(error) ? error.code : undefined,
    });
    throw error;
  });
  const { deferred } = prepared.verification;
  const checked = deferred
    ? `metadata and checksum list ok; ${deferred.files} files (${deferred.bytes} bytes) are hashed as they are sent`
    : 'checksums ok';
  onProgress({
    step: 'verify-bundle',
    status: 'ok',
    detail:
      prepared.signature.text === null
        ? `${checked}; not signed`
        : `${checked}; signed by key ${prepared.signature.keyId} (the host judges it against the keys it trusts)`,
  });
  return prepared;
}

/**
 * Verify the bundle, then in one host session: judge its signature against the host's
 * trust store, check the host, plan, upload what the host lacks, stage the release from
 * the blob store, record the switch in state.json, switch `current`, start and verify
 * the services; roll back to the previous release (or to nothing) when any check fails
 * or the caller aborts. Throws ApertusError on failure, with the report as details once
 * the host was changed.
 */
export async function install(options: InstallOptions): Promise<InstallResult> {
  parseHostRoot(options.root ?? DEFAULT_HOST_ROOT);
  const trustKey = await readInstallTrustKey(options);
  const tls = await readInstallTls(options);
  const prepared = await prepareInstallBundle(options.bundlePath, options);
  try {
    return await installPrepared(prepared, { ...options, trustKey, tls });
  } finally {
    await prepared.close();
  }
}

/** One host's install of a bundle already prepared: the host session and everything in it. */
export async function installPrepared(
  prepared: PreparedBundle,
  options: HostInstallOptions,
): Promise<InstallResult> {
  const onProgress = options.onProgress ?? noProgress;
  const emit = (step: InstallStep, status: 'start' | 'ok' | 'fail' | 'skip' | 'info', detail?: string) =>
    onProgress({ step, status, detail });
  const root = parseHostRoot(options.root ?? DEFAULT_HOST_ROOT);
  const { config } = prepared.bundle;
  return withHostSession(
    {
      target: options.target,
      root,
      command: `install ${config.name} ${config.version}`,
      lock: options.dryRun ? false : 'create',
      probe: { system: true },
      signal: options.signal,
      onProgress,
    },
    (session) => installInSession(session, prepared, options, emit),
  );
}

async function installInSession(
  session: HostSession,
  prepared: PreparedBundle,
  options: HostInstallOptions,
  emit: Emit,
): Promise<InstallResult> {
  const { transport, layout, probe } = session;
  const { signal } = options;
  const startedAt = new Date();
  const { bundle } = prepared;
  const host = transport.description;
  const failStep = (step: InstallStep, detail?: string) => (error: unknown) => {
    emit(step, 'fail', detail ?? (isApertusError(error) ? error.code : undefined));
    throw error;
  };
  const within = <T>(step: InstallStep, run: () => T, detail?: string): T => {
    try {
      return run();
    } catch (error) {
      return failStep(step, detail)(error);
    }
  };

  emit('trust', 'start');
  const trust = within('trust', () =>
    decideTrust(prepared.signature, trustedKeys(probe, layout, host), options, {
      host,
      bundle: `${bundle.config.name} ${bundle.config.version}`,
    }),
  );
  emit(
    'trust',
    'ok',
    trust.signer
      ? `signed by trusted key ${trust.signer.keyId}${trust.add ? ' (added to the host trust store)' : ''}`
      : 'NOT signature-checked: --allow-unsigned on a host that trusts no key',
  );

  emit('check', 'start');
  const hostCheck = within('check', () =>
    gateOnHostCheck({
      probe,
      probedAt: session.probedAt,
      subject: prepared.subject,
      skip: options.skipChecks ?? [],
      host,
    }),
  );
  const warnings = hostCheck.results.filter((r) => r.status === 'warn').length;
  emit(
    'check',
    'ok',
    `${hostCheck.results.length} checks, ${warnings} warnings${hostCheck.skipped.length ? `, skipped ${hostCheck.skipped.map((s) => s.id).join(', ')}` : ''}`,
  );

  emit('preflight', 'start');
  const tools = within('preflight', () => assertHostUsable(probe, layout, host));
  const plan = planInstall(
    {
      config: bundle.config,
      manifestDigest: bundle.manifestDigest,
      components: bundle.components,
      blobs: bundle.blobs,
    },
    probe,
    layout,
  );
  within(
    'preflight',
    () => assertDeltaBaseOnHost(plan, bundle.config, bundle.omitted, host),
    'the host lacks the release this delta was cut against',
  );
  if (plan.diskNeededBytes > plan.diskAvailableBytes) {
    emit('preflight', 'fail', 'not enough disk');
    throw await noSpaceError(transport, layout.root, 'the install', plan.diskNeededBytes);
  }
  if (options.egressInterface !== undefined) {
    // A wrong interface name fails here, before anything is sent, not after the upload.
    await readTxPackets(transport, options.egressInterface, signal).catch(
      failStep('preflight', `no interface ${options.egressInterface} to count egress on`),
    );
  }
  const services = planLaunches(bundle.config.services, {
    gpu: hostCheck.gpu,
    workloads: prepared.subject.workloads,
    imageConfigs: prepared.imageConfigs,
    exposure: { address: options.exposeAddress, insecureHttp: options.insecureHttp === true },
  });
  const provision: HostProvision = { tls: options.tls };
  await preflightServices(transport, layout, services, signal, provision).catch(failStep('preflight'));
  const venvs = wheelsVenvs(bundle.config, plan.release.dir);
  const pythons = await checkHostPython(transport, venvs, signal).catch(
    failStep('preflight', 'no python3 of the version the wheels need'),
  );
  emit(
    'preflight',
    'ok',
    `${probe.kernel ?? 'unknown'}/${probe.arch ?? 'unknown'}, ${tools.serviceManager}, hashes with ${tools.hashTool}`,
  );
  if (options.dryRun) {
    return {
      dryRun: true,
      plan,
      host: {
        transport: host,
        user: probe.user ?? 'unknown',
        arch: probe.arch ?? 'unknown',
        hashTool: tools.hashTool,
        serviceManager: tools.serviceManager,
        blobsPresent: probe.root.blobs.size,
        partialUploads: probe.root.partial.size,
      },
      check: hostCheck,
      trust: {
        mode: trust.mode,
        signer: trust.signer,
        trusted: trust.trusted,
        add: trust.add?.keyId ?? null,
      },
    };
  }

  // The first key of a new host is its own audited act, before anything of the bundle travels.
  let state = session.state;
  if (trust.add) {
    const key = trust.add;
    await transport.exec(addTrustedKeyScript(layout, key));
    const added: HostState = { ...state, trust: { mode: 'keys', since: new Date().toISOString() } };
    const recorded = await session.record({
      kind: 'trust',
      method: 'TRUST-ADD',
      endpoint: key.keyId,
      ok: true,
      subjectSha256: sha256Hex(key.key),
      current: probe.root.current,
      state: () => added,
      report: ({ path, seq }) => ({
        ok: true,
        path,
        record: { seq },
        action: 'add',
        keyId: key.keyId,
        by: `install --trust-key of ${bundle.config.name} ${bundle.config.version}`,
        at: new Date().toISOString(),
        trusted: trust.trusted,
      }),
    });
    state = { ...added, audit: { seq: recorded.record.seq, hash: recorded.record.hash } };
  }

  // The host key signs the RAG service's checkpoints: it exists before any service starts.
  await session.hostKey();
  // The gateway's TLS files and token, in place before any service starts; never in a bundle.
  await provisionServices(transport, layout, services, provision, signal);
  return applyInstall({
    session,
    prepared,
    plan,
    services,
    hostCheck,
    tools,
    trust,
    state,
    startedAt,
    options,
    emit,
    wheels: { venvs, pythons },
  });
}

async function applyInstall(ctx: ApplyContext): Promise<InstallResult> {
  const { session, prepared, plan, services, tools, emit, options } = ctx;
  const { transport, layout } = session;
  const { signal } = options;
  const host = transport.description;
  const reader = prepared.reader;
  const onProgress = options.onProgress ?? noProgress;

  emit('transfer', 'start', `${plan.uploads.length} of ${plan.blobs.total} blobs`);
  const replaced: ReportInput['replaced'] = plan.wrongSize.map((b) => ({
    digest: b.digest,
    reason: `${b.found} bytes on the host, ${b.size} in the bundle`,
  }));
  const upload = (uploads: InstallPlan['uploads']) =>
    transferBlobs({
      transport,
      layout,
      hashTool: tools.hashTool,
      uploads,
      openBlob: (digest, start) => reader.createReadStream(blobPath(digest), { start }),
      hashed: prepared.hashed,
      signal,
      onProgress,
    }).catch(async (error: unknown) => {
      emit('transfer', 'fail', isApertusError(error) ? error.code : undefined);
      if (isApertusError(error) && isNoSpace(error.message))
        throw await noSpaceError(transport, layout.root, 'uploading the blobs', plan.uploadBytes);
      throw error;
    });
  let transfer: TransferResult = await upload(plan.uploads);
  emit(
    'transfer',
    'ok',
    `${transfer.blobs} blobs, ${transfer.bytes} bytes uploaded; ${plan.blobs.present} already on the host${replaced.length ? `; ${replaced.length} replaced` : ''}`,
  );

  emit('stage', 'start');
  const uploaded = new Set(plan.uploads.map((u) => u.digest));
  const check = [...prepared.bundle.blobs.keys()].filter(
    (digest) => !uploaded.has(digest) && !prepared.bundle.omitted.has(digest),
  );
  const stageOnce = (verify: readonly string[]) =>
    stageRelease(transport, layout, plan, services, {
      hashTool: tools.hashTool,
      check: verify,
      blobs: [...prepared.bundle.blobs.keys()],
      eval: prepared.bundle.config.verify.eval,
      signal,
    }).catch((error: unknown) => {
      emit('stage', 'fail', isApertusError(error) ? error.code : undefined);
      throw error;
    });
  let staged = await stageOnce(check);
  if (staged.corrupt.length > 0) {
    // Damaged in the store since it was verified: upload it anew, then stage with what was sent.
    for (const blob of staged.corrupt)
      replaced.push({
        digest: blob.digest,
        reason: `its content hashes to ${blob.actual || '(unreadable)'}`,
      });
    const again = staged.corrupt.map((b) => ({
      digest: b.digest,
      size: prepared.bundle.blobs.get(b.digest) ?? 0,
      resumeFrom: 0,
    }));
    const more = await upload(again);
    transfer = {
      blobs: transfer.blobs + more.blobs,
      bytes: transfer.bytes + more.bytes,
      ms: transfer.ms + more.ms,
    };
    const rechecked = new Set(staged.corrupt.map((b) => b.digest));
    staged = await stageOnce(check.filter((d) => !rechecked.has(d)));
    if (staged.corrupt.length > 0) {
      emit('stage', 'fail', 'blobs damaged again after upload');
      throw new ApertusError(
        'blob-corrupt-on-host',
        `Blobs ${staged.corrupt.map((b) => b.digest).join(', ')} are damaged in the store of ${host} again right after they were sent.`,
        {
          kind: 'operation',
          hint: 'Another process changes the blob store, or the disk is failing: check the host (dmesg, the owners of the files under blobs/), then install again.',
        },
      );
    }
  }
  emit(
    'stage',
    'ok',
    staged.created
      ? `${plan.release.dir}${check.length ? `; ${check.length} stored blobs re-hashed` : ''}`
      : `${plan.release.dir} (kept, already complete)`,
  );

  if (plan.images.length > 0) {
    emit('images', 'start', `${plan.images.length} images`);
    const loaded = await loadImages(transport, layout, plan, signal).catch((error: unknown) => {
      emit('images', 'fail');
      throw error;
    });
    emit('images', 'ok', loaded.join(', '));
  } else emit('images', 'skip', 'no image components');

  if (ctx.wheels.venvs.length > 0) {
    emit('wheels', 'start', `${ctx.wheels.venvs.length} venvs`);
    const made = await createVenvs(transport, ctx.wheels.venvs, ctx.wheels.pythons, signal).catch(
      (error: unknown) => {
        emit('wheels', 'fail');
        throw error;
      },
    );
    emit('wheels', 'ok', made.map((v) => `${v.venvDir}${v.created ? '' : ' (kept)'}`).join(', '));
  } else emit('wheels', 'skip', 'no wheels components');

  return activateAndVerify(ctx, { transfer, replaced, created: staged.created });
}
