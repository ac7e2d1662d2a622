import path from 'node:path/posix';
import { z } from 'zod';
import { ApertusError } from '../errors.js';
import { evalSpecSchema } from '../eval/eval-set.js';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import type { ServiceSpec } from '../layout/types.js';
import { startServices, stopServices } from '../runtimes/lifecycle.js';
import { servicePorts, serviceSpecSchema } from '../runtimes/registry.js';
import { checkReleaseServices } from '../runtimes/release-health.js';
import { resourceName, versionString } from '../spec/safe-values.js';
import { describeIssues } from '../spec/zod-issues.js';
import type { HostLayout } from './layout.js';
import type { ServiceManager } from './preflight.js';
import { parseProcNetTcp } from './probe.js';
import { RELEASE_FILE, type ReleaseRecord } from './stage.js';
import { RELEASE_LINK } from './state.js';

/** A release found on the host: where it is and what it runs. */
export interface Release {
  dir: string;
  record: ReleaseRecord;
  services: ServiceSpec[];
}

/**
 * release.json of a release on the host, validated as the bundle it came from was: a
 * record another process altered cannot name a service, path or argument the bundle could
 * not. Null when the release has none (incomplete, or gone).
 */
export async function readRelease(
  transport: Transport,
  layout: HostLayout,
  linkTarget: string,
): Promise<Release | null> {
  const dir = path.join(layout.root, linkTarget);
  const file = path.join(dir, RELEASE_FILE);
  const result = await transport.exec(shellQuote(['cat', file]), { reject: false });
  if (result.exitCode !== 0) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(result.stdout);
  } catch {
    raw = undefined;
  }
  const parsed = releaseRecordSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ApertusError(
      'host-release-invalid',
      `${file} on ${transport.description} is not a release record apertus wrote (${describeIssues(parsed.error)}); nothing of it was started or stopped.`,
      {
        kind: 'operation',
        hint: `Keep it as evidence and install that release again (apertus install rebuilds ${dir}).`,
      },
    );
  }
  return { dir, record: parsed.data, services: parsed.data.services };
}

const releaseRecordSchema: z.ZodType<ReleaseRecord> = z.object({
  name: resourceName,
  version: versionString,
  manifestDigest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  stagedAt: z.string(),
  services: z.array(serviceSpecSchema),
  blobs: z.array(z.string().regex(/^sha256:[0-9a-f]{64}$/)).optional(),
  eval: evalSpecSchema.optional(),
});

/** Points `current` at a release by renaming a new link over it: readers see old or new, never none. */
export async function switchCurrent(
  transport: Transport,
  layout: HostLayout,
  linkTarget: string,
): Promise<void> {
  const next = `${layout.current}.next`;
  await transport.exec(
    [
      shellQuote(['rm', '-f', next]),
      shellQuote(['ln', '-s', linkTarget, next]),
      // mv -T renames onto the link itself instead of moving into the directory it points at.
      shellQuote(['mv', '-T', '-f', next, layout.current]),
    ].join(' && '),
  );
}

export async function removeCurrent(transport: Transport, layout: HostLayout): Promise<void> {
  await transport.exec(shellQuote(['rm', '-f', layout.current]));
}

/** A release found on the host, with the link target that names it. */
export type LocatedRelease = Release & { linkTarget: string };

export interface PutBackInput {
  transport: Transport;
  layout: HostLayout;
  /** What is being left: its services are stopped; `removeDir` is removed when nothing goes back (a release this command created). */
  leaving: { linkTarget: string; services: ServiceSpec[]; removeDir?: string | undefined };
  /** The release that ran before, or null: then no release is current afterwards. */
  back: LocatedRelease | null;
  manager: ServiceManager;
  healthTimeoutMs: number;
}

/**
 * Puts the host back as it was, for a failed or interrupted install or rollback: the
 * release that ran before current again, started, answering /health with its models
 * listed; or, on a host that had none, no release at all. It takes no abort signal: the
 * host is put back even after Ctrl-C.
 */
export async function putBack(input: PutBackInput): Promise<{ to: string | null; healthy: boolean }> {
  const { transport, layout, leaving, back } = input;
  await stopServices(transport, layout, leaving.services);
  if (!back) {
    await removeCurrent(transport, layout);
    if (leaving.removeDir) await transport.exec(shellQuote(['rm', '-rf', leaving.removeDir]));
    return { to: null, healthy: true };
  }
  if (back.linkTarget !== leaving.linkTarget) await switchCurrent(transport, layout, back.linkTarget);
  try {
    await startServices(transport, layout, back.dir, back.services, input.manager);
  } catch {
    return { to: back.linkTarget, healthy: false };
  }
  const checks = await checkReleaseServices(transport, back.services, input.healthTimeoutMs);
  return { to: back.linkTarget, healthy: checks.every((c) => c.status === 'ok') };
}

/**
 * After the old services stopped, their ports must be free: otherwise a process that is
 * not ours would answer the health checks in place of the new release.
 */
export async function assertPortsFree(transport: Transport, services: ServiceSpec[]): Promise<void> {
  const result = await transport.exec('cat /proc/net/tcp /proc/net/tcp6 2>/dev/null', { reject: false });
  if (result.stdout.trim() === '') return; // no procfs (not Linux): the health check is all we have
  const listening = new Set(parseProcNetTcp(result.stdout));
  const taken = services.flatMap((s) =>
    servicePorts(s)
      .filter((port) => listening.has(port))
      .map((port) => ({ port, name: s.name })),
  );
  if (taken.length > 0) {
    throw new ApertusError(
      'host-port-in-use',
      `Port ${taken.map((s) => `${s.port} (${s.name})`).join(', ')} is in use on ${transport.description} by a process that is not a service of the current release.`,
      {
        kind: 'operation',
        hint: `Find it with ss -ltnp 'sport = :${taken[0]?.port}' on the host and stop it, or give the service another port in the recipe.`,
      },
    );
  }
}

/** Stops the services of the release `current` points at; returns their names. */
export async function stopCurrentRelease(transport: Transport, layout: HostLayout): Promise<string[]> {
  const link = await transport.exec(shellQuote(['readlink', layout.current]), { reject: false });
  if (link.exitCode !== 0) return [];
  const release = await readRelease(transport, layout, link.stdout.trim());
  if (!release) return [];
  await stopServices(transport, layout, release.services);
  return release.services.map((s) => s.name);
}

/** A release directory on the host, with its record; `record` null when it has none readable (incomplete, or altered). */
export interface ListedRelease {
  /** `releases/NAME/VERSION`, as `current` would name it. */
  release: string;
  dir: string;
  record: ReleaseRecord | null;
  /** Why `record` is null. */
  problem: string | null;
}

/**
 * Every release directory under releases/ with its release.json, in one round trip.
 * Entries whose names the layout could not have made, and links, are left out.
 */
export async function listReleases(
  transport: Transport,
  layout: HostLayout,
  signal?: AbortSignal,
): Promise<ListedRelease[]> {
  const marker = '=== apertus release ';
  const result = await transport.exec(
    `cd ${shellQuote([layout.root])} 2>/dev/null || exit 0
for d in releases/*/*; do
  [ -d "$d" ] && [ ! -L "$d" ] || continue
  printf '%s%s\\n' ${shellQuote([marker])} "$d"
  cat "$d/${RELEASE_FILE}" 2>/dev/null
  echo
done`,
    { reject: false, ...(signal ? { signal } : {}) },
  );
  const listed: ListedRelease[] = [];
  for (const chunk of result.stdout.split(marker).slice(1)) {
    const newline = chunk.indexOf('\n');
    const release = (newline < 0 ? chunk : chunk.slice(0, newline)).trim();
    if (!RELEASE_LINK.test(release)) continue;
    const [, name = '', version = ''] = release.split('/');
    const dir = layout.release(name, version);
    const text = newline < 0 ? '' : chunk.slice(newline + 1).trim();
    if (text === '') {
      listed.push({ release, dir, record: null, problem: `no ${RELEASE_FILE} (an incomplete release)` });
      continue;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      raw = undefined;
    }
    const parsed = releaseRecordSchema.safeParse(raw);
    listed.push(
      parsed.success
        ? { release, dir, record: parsed.data, problem: null }
        : { release, dir, record: null, problem: `${RELEASE_FILE} is not a record apertus wrote` },
    );
  }
  return listed.sort((a, b) => a.release.localeCompare(b.release));
}
