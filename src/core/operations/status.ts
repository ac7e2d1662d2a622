import path from 'node:path/posix';
import { type AuditRecord, auditRecordHash } from '../audit/verify-chain.js';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import { noProgress, type RunOptions } from '../progress.js';
import { serviceModelId } from '../runtimes/release-health.js';
import { waitForHealth } from '../runtimes/verify-services.js';
import { type InstallTarget, openTarget } from '../target/connect.js';
import { DEFAULT_HOST_ROOT, type HostLayout, hostLayout } from '../target/layout.js';
import { readRelease } from '../target/releases.js';
import { readCurrentLink, readHostState } from '../target/state.js';

/** What `apertus status` shows: one read-only look at a host. Field names are a contract. */
export interface HostStatus {
  /** Every service of the current release answers /health (true when nothing is installed). */
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
  } | null;
  /** The release state.json names as previous: what `apertus rollback` goes back to. */
  previous: { release: string; version: string; present: boolean } | null;
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
    health: 'ok' | 'fail';
    detail: string;
  }>;
  blobs: { count: number; diskBytes: number };
  lastAudit: {
    seq: number;
    time: string;
    method: string;
    endpoint: string;
    status: number;
    /** Whether the record's own hash matches (the whole chain: `apertus audit verify --installs`). */
    sound: boolean;
  } | null;
  lock: { held: boolean; holder: string | null };
}

export interface HostStatusOptions extends RunOptions {
  target: InstallTarget;
  root?: string | undefined;
  /** How long each service may take to answer /health. */
  healthTimeoutMs?: number | undefined;
}

export const STATUS_STEPS = ['connect', 'status.read', 'status.health'] as const;

/** Reads the host's releases, blob store, audit tail and lock, and asks each current service for /health. Changes nothing. */
export async function hostStatus(options: HostStatusOptions): Promise<HostStatus> {
  const onProgress = options.onProgress ?? noProgress;
  const { signal } = options;
  const layout = hostLayout(options.root ?? DEFAULT_HOST_ROOT);
  onProgress({ step: 'connect', status: 'start' });
  const transport = await openTarget(options.target, { signal, onProgress });
  onProgress({ step: 'connect', status: 'ok', detail: transport.description });
  try {
    onProgress({ step: 'status.read', status: 'start' });
    const state = await readHostState(transport, layout, signal);
    const link = await readCurrentLink(transport, layout, signal);
    const release = link ? await readRelease(transport, layout, link) : null;
    const facts = await readStoreFacts(transport, layout, signal);
    const releases = facts.releases.map((r) => ({ ...r, current: r.release === link }));
    const current: HostStatus['current'] = release
      ? {
          name: release.record.name,
          version: release.record.version,
          manifestDigest: release.record.manifestDigest,
          release: link as string,
          dir: release.dir,
          stagedAt: release.record.stagedAt,
          since: state.current?.release === link ? state.updatedAt : null,
          report: state.current?.release === link ? state.current.report : null,
        }
      : null;
    const previous = state.previous
      ? {
          release: state.previous,
          version: path.basename(state.previous),
          present: releases.some((r) => r.release === state.previous),
        }
      : null;
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

    return {
      ok: services.every((s) => s.health === 'ok'),
      host: transport.description,
      root: layout.root,
      installed: current !== null,
      current,
      previous,
      releases,
      services,
      blobs: facts.blobs,
      lastAudit: facts.lastAudit,
      lock: facts.lock,
    };
  } finally {
    await transport.close();
  }
}

interface StoreFacts {
  releases: Array<{ name: string; version: string; release: string; diskBytes: number }>;
  blobs: HostStatus['blobs'];
  lastAudit: HostStatus['lastAudit'];
  lock: HostStatus['lock'];
}

/** One script for everything on disk: tagged lines, so a missing piece is just absent. */
async function readStoreFacts(
  transport: Transport,
  layout: HostLayout,
  signal?: AbortSignal,
): Promise<StoreFacts> {
  const q = (value: string) => shellQuote([value]);
  const script = [
    `if [ -d ${q(layout.releases)} ]; then cd ${q(layout.releases)} && for d in */*; do`,
    '  [ -d "$d" ] || continue',
    '  printf \'release=%s %s\\n\' "$(du -sk "$d" | cut -f1)" "$d"',
    'done; fi',
    `if [ -d ${q(layout.blobDir)} ]; then`,
    `  printf 'blobs=%s %s\\n' "$(find ${q(layout.blobDir)} -type f ! -name '.*' | wc -l | tr -d ' ')" "$(du -sk ${q(layout.blobDir)} | cut -f1)"`,
    'fi',
    `if [ -s ${q(layout.auditLog)} ]; then printf 'audit=%s\\n' "$(tail -n 1 ${q(layout.auditLog)})"; fi`,
    `if [ -d ${q(layout.lock)} ]; then printf 'lock=%s\\n' "$(cat ${q(`${layout.lock}/holder`)} 2>/dev/null | head -n 1)"; fi`,
  ].join('\n');
  const result = await transport.exec('sh -s', { stdin: `${script}\n`, reject: false, signal });
  const lines = result.stdout.split('\n');
  const values = (key: string) =>
    lines.filter((line) => line.startsWith(`${key}=`)).map((line) => line.slice(key.length + 1));

  const releases = values('release').flatMap((entry) => {
    const [kib, dir] = [entry.slice(0, entry.indexOf(' ')), entry.slice(entry.indexOf(' ') + 1)];
    const [name, version] = dir.split('/');
    if (!name || !version) return [];
    return [
      { name, version, release: layout.releaseLinkTarget(name, version), diskBytes: Number(kib) * 1024 },
    ];
  });
  const [count, kib] = (values('blobs')[0] ?? '0 0').split(' ');
  const lock = values('lock');
  return {
    releases,
    blobs: { count: Number(count), diskBytes: Number(kib) * 1024 },
    lastAudit: parseAuditLine(values('audit')[0]),
    lock: { held: lock.length > 0, holder: lock[0] || null },
  };
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
