/**
 * What `apertus prune` removes, as data (STYLE.md 3): releases beyond the N most recent,
 * never the current, previous or an interrupted command's, then the blobs and image
 * archives no kept release references. A kept release that records no blob list (staged
 * by an older apertus) could need any blob: then no blob is removed, and the plan says why.
 */

/** A release on the host as prune sees it. */
export interface PruneCandidate {
  /** `releases/NAME/VERSION`. */
  release: string;
  /** When it was staged (release.json); null for an incomplete release. */
  stagedAt: string | null;
  /** The blobs it references (`sha256:<hex>`); null when it records none. */
  blobs: readonly string[] | null;
}

export type KeepReason = 'current' | 'previous' | 'pending' | 'recent';

export interface PruneInput {
  releases: readonly PruneCandidate[];
  current: string | null;
  previous: string | null;
  /** Releases an interrupted command was switching between (state.json's pending). */
  pending: readonly string[];
  /** How many of the most recently staged releases to keep besides the protected ones. */
  keep: number;
  /** The blob store: hex digest -> bytes. */
  store: ReadonlyMap<string, number>;
  /** Image archive directories under images/, by manifest digest (`sha256:<hex>`). */
  images: readonly string[];
}

export interface PrunePlan {
  keep: number;
  releases: Array<
    | { release: string; action: 'keep'; why: KeepReason[] }
    | { release: string; action: 'remove'; why: 'older' | 'incomplete' }
  >;
  blobs: {
    remove: Array<{ digest: string; bytes: number }>;
    removeBytes: number;
    kept: number;
    /** Why no blob is removed at all, when that is so. */
    keptAll: string | null;
  };
  images: { remove: string[]; kept: number };
}

export function planPrune(input: PruneInput): PrunePlan {
  if (!Number.isSafeInteger(input.keep) || input.keep < 0)
    throw new RangeError(`keep must be a whole number >= 0, got ${input.keep}`);
  const protectedWhy = new Map<string, KeepReason[]>();
  const protect = (release: string | null, why: KeepReason) => {
    if (release === null) return;
    protectedWhy.set(release, [...(protectedWhy.get(release) ?? []), why]);
  };
  protect(input.current, 'current');
  protect(input.previous, 'previous');
  for (const release of input.pending) protect(release, 'pending');

  // Newest first; the release name breaks ties so the plan is the same on every run.
  const complete = input.releases
    .filter((r) => r.stagedAt !== null)
    .sort((a, b) =>
      a.stagedAt === b.stagedAt
        ? b.release.localeCompare(a.release)
        : (b.stagedAt as string).localeCompare(a.stagedAt as string),
    );
  const recent = new Set(complete.slice(0, input.keep).map((r) => r.release));

  const releases: PrunePlan['releases'] = [];
  const kept: PruneCandidate[] = [];
  for (const candidate of [...input.releases].sort((a, b) => a.release.localeCompare(b.release))) {
    const why = [...(protectedWhy.get(candidate.release) ?? [])];
    if (recent.has(candidate.release)) why.push('recent');
    if (why.length > 0) {
      releases.push({ release: candidate.release, action: 'keep', why });
      kept.push(candidate);
    } else {
      releases.push({
        release: candidate.release,
        action: 'remove',
        why: candidate.stagedAt === null ? 'incomplete' : 'older',
      });
    }
  }

  const unknown = kept.find((r) => r.blobs === null);
  if (unknown) {
    return {
      keep: input.keep,
      releases,
      blobs: {
        remove: [],
        removeBytes: 0,
        kept: input.store.size,
        keptAll: `${unknown.release} records no blob list (staged by an older apertus, or incomplete), so any blob may be its own: none is removed`,
      },
      images: { remove: [], kept: input.images.length },
    };
  }
  const referenced = new Set(kept.flatMap((r) => r.blobs ?? []));
  const remove = [...input.store]
    .filter(([hex]) => !referenced.has(`sha256:${hex}`))
    .map(([hex, bytes]) => ({ digest: `sha256:${hex}`, bytes }))
    .sort((a, b) => a.digest.localeCompare(b.digest));
  const images = input.images.filter((digest) => !referenced.has(digest)).sort();
  return {
    keep: input.keep,
    releases,
    blobs: {
      remove,
      removeBytes: remove.reduce((sum, b) => sum + b.bytes, 0),
      kept: input.store.size - remove.length,
      keptAll: null,
    },
    images: { remove: images, kept: input.images.length - images.length },
  };
}
