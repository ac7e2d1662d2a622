/**
 * Models laid out a second time as a Hugging Face cache inside the release (DESIGN.md
 * section 3): `hf-cache/models--ORG--NAME/snapshots/<sha>/<file>`, hard links to the same
 * blobs as the model directory (no data copied), plus `refs/main` holding the sha. With
 * `HF_HUB_CACHE=<root>/current/hf-cache HF_HUB_OFFLINE=1`, tools that take a repo id
 * (transformers, sentence-transformers, huggingface_hub) find the bundled files by id with
 * no network. The layout is the one huggingface_hub documents for reimplementers
 * (runtime-facts 2.6, hub-docs local-cache.md): refs/<ref> holds the commit, and a
 * snapshot folder is named by it.
 *
 * Derived from the model directories' link steps, so it follows whatever media types the
 * bundle's model layers have; only hf: components pinned to a commit are laid out.
 */
import path from 'node:path/posix';
import type { BundleConfig } from '../layout/types.js';
import type { Materialisation } from './install-plan.js';

/** The cache folder inside a release; HF_HUB_CACHE points at `<root>/current/hf-cache`. */
export const HF_CACHE_DIR = 'hf-cache';

/** ORG/NAME as the Hub allows them: no path separators beyond the one, no dot-only parts. */
const REPO =
  /^hf:(?:\/\/)?([A-Za-z0-9][A-Za-z0-9._-]{0,95})\/([A-Za-z0-9][A-Za-z0-9._-]{0,95})@([0-9a-f]{40})$/;

/** `models--ORG--NAME` and the commit of an hf: source pinned to one (`hf://ORG/NAME@SHA` as bundles record it); undefined for any other source. */
export function hfCacheRepo(source: string): { folder: string; repo: string; commit: string } | undefined {
  const match = REPO.exec(source);
  if (!match) return undefined;
  const [, org, name, commit] = match as unknown as [string, string, string, string];
  if (org.includes('..') || name.includes('..')) return undefined;
  return { folder: `models--${org}--${name}`, repo: `${org}/${name}`, commit };
}

/**
 * The extra steps that lay each hf: model component out as a Hugging Face cache: one more
 * hard link per file the component's directory gets, and refs/main.
 */
export function hfCacheMaterialisation(
  config: Pick<BundleConfig, 'components'>,
  componentLinks: readonly Materialisation[],
  releaseDir: string,
): Materialisation[] {
  const steps: Materialisation[] = [];
  // Two components from one repo and commit share the snapshot: each file is laid out once.
  const placed = new Set<string>();
  const place = (step: Materialisation & { to: string }) => {
    if (placed.has(step.to)) return;
    placed.add(step.to);
    steps.push(step);
  };
  for (const component of config.components) {
    if (component.kind !== 'model') continue;
    const repo = hfCacheRepo(component.provenance.source);
    if (!repo) continue;
    const componentDir = path.join(releaseDir, component.name);
    const repoDir = path.join(releaseDir, HF_CACHE_DIR, repo.folder);
    const snapshot = path.join(repoDir, 'snapshots', repo.commit);
    let linked = 0;
    for (const step of componentLinks) {
      if (step.type !== 'link' || !step.to.startsWith(`${componentDir}/`)) continue;
      place({ ...step, to: path.join(snapshot, step.to.slice(componentDir.length + 1)) });
      linked++;
    }
    if (linked > 0) place({ type: 'write', to: path.join(repoDir, 'refs', 'main'), content: repo.commit });
  }
  return steps;
}
