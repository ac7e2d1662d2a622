import path from 'node:path/posix';
import { type AuditRecord, auditRecordHash } from '../audit/verify-chain.js';
import { isApertusError } from '../errors.js';
import { noProgress, type RunOptions } from '../progress.js';
import { serviceWarnings } from '../runtimes/registry.js';
import { serviceAdapterIds, serviceModelId } from '../runtimes/release-health.js';
import { waitForHealth } from '../runtimes/verify-services.js';
import { verifiedAuditTail } from '../target/audit-log.js';
import type { InstallTarget } from '../target/connect.js';
import { hostPublicKey } from '../target/host-key.js';
import { DEFAULT_HOST_ROOT, parseHostRoot } from '../target/layout.js';
import { describeHolder, type LockHolder, readLockState } from '../target/lock.js';
import { readRelease } from '../target/releases.js';
import { judgeRoot, type RootProblem } from '../target/root-safety.js';
import { withHostSession } from '../target/session.js';
import type { Signer } from '../target/state.js';
import { trustedKeys } from '../target/trust-store.js';

/** What `apertus status` shows: one read-only look at a host. Field names are a contract. */
export interface HostStatus {
  /**
   * Every service of the current release answers /health, the current release was
   * verified (or a live command is verifying it), the root is safe and the audit log
   * reaches its anchors. True when nothing is installed and nothing is wrong.
   */
  ok: boolean;
  host: string;
  root: string;
  /** Whether any release is current. */
  installed: boolean;
  current: {
    name: string;
    version: string;
    manifestDigest: string;
    /** Relative to the root, as the `current` link holds it. */
    release: string;
    dir: string;
    stagedAt: string;
    /** When the release became current (state.json), if the state file names it. */
    since: string | null;
    report: string | null;
    /** Its services passed verification; false after a command was killed between the switch and the end of verification. */
    verified: boolean;
    /** Who signed the bundle it came from, as the host's trust store verified it; null when not known or unsigned. */
    signer: Signer | null;
  } | null;
  /** The release state.json names as previous: what `apertus rollback` goes back to. */
  previous: { release: string; version: string; present: boolean } | null;
  /** A command that was changing `current` and did not finish (killed), from state.json. */
  interrupted: { command: string; release: string; previous: string | null; since: string } | null;
  releases: Array<{
    name: string;
    version: string;
    release: string;
    current: boolean;
    /** Disk use of the release's files (KiB blocks as du counts them); its data is in the shared blob store. */
    diskBytes: number;
  }>;
  services: Array<{
    name: string;
    runtime: string;
    port: number;
    modelId: string | null;
    /** The ids its LoRA adapters are served under. */
    adapterIds: readonly string[];
    health: 'ok' | 'fail';
    detail: string;
  }>;
  blobs: { count: number; diskBytes: number };
  /** How the host decides what it installs: its trusted keys, or unsigned (--allow-unsigned, warned). */
  trust: { mode: 'keys' | 'unsigned' | 'none'; keys: string[] };
  lastAudit: {
    seq: number;
    time: string;
    method: string;
    endpoint: string;
    status: number;
    /** Whether the record's own hash matches (the whole chain: `apertus audit verify --installs`). */
    sound: boolean;
  } | null;
  /** Why the audit log does not reach its anchors (records gone, log replaced); null when it does. */
  auditProblem: string | null;
  rootProblems: RootProblem[];
  lock: {
    held: boolean;
    holder: LockHolder | null;
    /** Its holder's process is gone: the next command takes it over. */
    stale: boolean | null;
    /** The holder in one line: 'install demo 0.2.0 by ops@bastion (pid 4242) since ...'. */
    description: string | null;
  };
  /** Everything above an operator should act on, one line each. */
  warnings: string[];
}

export interface HostStatusOptions extends RunOptions {
  target: InstallTarget;
  root?: string | undefined;
  /** How long each service may take to answer /health. */
  healthTimeoutMs?: number | undefined;
}

/** Reads the host's releases, blob store, audit log, trust and lock, and asks each current service for /health. Changes nothing. */
export async function hostStatus(options: HostStatusOptions): Promise<HostStatus> {
  const onProgress = options.onProgress ?? noProgress;
  const root = parseHostRoot(options.root ?? DEFAULT_HOST_ROOT);
  return withHostSession(
    {
      target: options.target,
      root,
      command: 'status',
      lock: false,
      probe: { system: false, sizes: true },
      signal: options.signal,
      onProgress,
    },
    async (session) => {
      const { transport, layout, probe, state, signal } = session;
      onProgress({ step: 'status.read', status: 'start' });
      const link = probe.root.current;
      const problems: string[] = session.stateProblem ? [session.stateProblem] : [];
      const release = link
        ? await readRelease(transport, layout, link).catch((error: unknown) => {
            if (!isApertusError(error)) throw error;
            problems.push(error.message);
            return null;
          })
        : null;
      const named = state.current?.release === link ? state.current : null;
      const current: HostStatus['current'] =
        release && link
          ? {
              name: release.record.name,
              version: release.record.version,
              manifestDigest: release.record.manifestDigest,
              release: link,
              dir: release.dir,
              stagedAt: release.record.stagedAt,
              since: named ? state.updatedAt : null,
              report: named?.report ?? null,
              verified: named?.verified ?? true,
              signer: named?.signer ?? null,
            }
          : null;
      const releases = (probe.root.releases ?? []).map((r) => {
        const [, name = '', version = ''] = r.release.split('/');
        return { name, version, release: r.release, current: r.release === link, diskBytes: r.diskBytes };
      });
      const previous = state.previous
        ? {
            release: state.previous,
            version: path.basename(state.previous),
            present: releases.some((r) => r.release === state.previous),
          }
        : null;
      const lock = await readLockState(transport, layout, signal);
      const rootProblems = judgeRoot(probe.root.entries, layout, probe.uid);
      let auditProblem: string | null = null;
      try {
        await verifiedAuditTail(transport, layout, probe, state, hostPublicKey(probe, layout), signal);
      } catch (error) {
        if (!isApertusError(error)) throw error;
        auditProblem = error.message;
      }
      let keys: string[] = [];
      try {
        keys = trustedKeys(probe, layout, transport.description).map((k) => k.keyId);
      } catch (error) {
        if (!isApertusError(error)) throw error;
        rootProblems.push({ path: layout.trust, problem: error.message, fix: error.hint ?? '' });
      }
      const trust: HostStatus['trust'] = {
        mode: keys.length > 0 ? 'keys' : state.trust?.mode === 'unsigned' ? 'unsigned' : 'none',
        keys,
      };
      onProgress({
        step: 'status.read',
        status: 'ok',
        detail: current ? `current ${current.name} ${current.version}` : 'nothing installed',
      });

      const services: HostStatus['services'] = [];
      if (release && release.services.length > 0) {
        onProgress({ step: 'status.health', status: 'start' });
        for (const service of release.services) {
          const health = await waitForHealth(transport, service, options.healthTimeoutMs ?? 3_000, signal);
          services.push({
            name: service.name,
            runtime: service.runtime,
            port: service.port,
            modelId: serviceModelId(service),
            adapterIds: serviceAdapterIds(service),
            health: health.status,
            detail: health.detail,
          });
        }
        const down = services.filter((s) => s.health !== 'ok');
        onProgress({
          step: 'status.health',
          status: down.length === 0 ? 'ok' : 'fail',
          detail:
            down.length === 0
              ? `${services.length} services answer`
              : `not answering: ${down.map((s) => s.name).join(', ')}`,
        });
      } else onProgress({ step: 'status.health', status: 'skip', detail: 'no current release' });

      const busy = lock.held && lock.stale === false;
      const interrupted = state.pending && !busy ? state.pending : null;
      const warnings = [
        ...(trust.mode === 'unsigned'
          ? [
              'this host installs unsigned bundles (--allow-unsigned): trust a key with `apertus trust add KEY.pub`',
            ]
          : []),
        ...(current && !current.verified && !busy
          ? [
              `the current release ${current.release} was never verified: ${interrupted?.command ?? 'a command'} was stopped after switching to it; \`apertus rollback\` returns to ${state.previous ?? 'nothing'}`,
            ]
          : []),
        ...(lock.held && lock.stale
          ? [
              `a stale lock of ${lock.holder ? describeHolder(lock.holder) : 'an unknown command'} remains; the next command takes it over`,
            ]
          : []),
        ...(lock.held && lock.stale === null
          ? [`${layout.lock} names no holder: remove it if no apertus command is running`]
          : []),
        ...(release?.services ?? []).flatMap(serviceWarnings),
        ...rootProblems.map((p) => `${p.path} ${p.problem} (fix: ${p.fix})`),
        ...(auditProblem ? [auditProblem] : []),
        ...problems,
      ];
      return {
        ok:
          services.every((s) => s.health === 'ok') &&
          (current === null || current.verified || busy) &&
          rootProblems.length === 0 &&
          auditProblem === null &&
          problems.length === 0,
        host: transport.description,
        root: layout.root,
        installed: current !== null,
        current,
        previous,
        interrupted,
        releases,
        services,
        blobs: { count: probe.root.blobs.size, diskBytes: probe.root.storeBytes ?? 0 },
        trust,
        lastAudit: parseAuditLine(probe.root.auditHead?.last),
        auditProblem,
        rootProblems,
        lock: { ...lock, description: lock.holder ? describeHolder(lock.holder) : null },
        warnings,
      };
    },
  );
}

function parseAuditLine(line: string | undefined): HostStatus['lastAudit'] {
  if (!line) return null;
  try {
    const record = JSON.parse(line) as AuditRecord;
    return {
      seq: record.seq,
      time: record.time,
      method: record.method,
      endpoint: record.endpoint,
      status: record.status,
      sound: auditRecordHash(record) === record.hash,
    };
  } catch {
    return { seq: -1, time: '', method: '', endpoint: '', status: -1, sound: false };
  }
}
