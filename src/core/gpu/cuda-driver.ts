/**
 * Whether a host's NVIDIA driver can run a container image built on a given CUDA. The
 * image says its CUDA in its config (`CUDA_VERSION=13.0.2`, `NVIDIA_REQUIRE_CUDA=cuda>=13.0
 * ...`, set by the nvidia/cuda base images, runtime-facts 3.1); the driver table maps
 * that to the minimum Linux driver (runtime-facts 4.1).
 */

/**
 * "Table 3 CUDA Toolkit and Corresponding Driver Versions", CUDA 13.2 release notes
 * (runtime-facts 4.1). Index i of `drivers` is update i: GA, U1, U2, ... which is also
 * the patch number of CUDA_VERSION (12.8.1 is 12.8 Update 1). There is no CUDA 12.7.
 */
export const CUDA_DRIVER_TABLE: ReadonlyArray<{ cuda: string; drivers: readonly string[] }> = [
  { cuda: '11.8', drivers: ['520.61.05'] },
  { cuda: '12.0', drivers: ['525.60.13', '525.85.12'] },
  { cuda: '12.1', drivers: ['530.30.02', '530.30.02'] },
  { cuda: '12.2', drivers: ['535.54.03', '535.86.09', '535.104.05'] },
  { cuda: '12.3', drivers: ['545.23.06', '545.23.08'] },
  { cuda: '12.4', drivers: ['550.54.14', '550.54.15'] },
  { cuda: '12.5', drivers: ['555.42.02', '555.42.06'] },
  { cuda: '12.6', drivers: ['560.28.03', '560.35.03', '560.35.03', '560.35.05'] },
  { cuda: '12.8', drivers: ['570.26', '570.124.06'] },
  { cuda: '12.9', drivers: ['575.51.03', '575.57.08'] },
  { cuda: '13.0', drivers: ['580.65.06', '580.82.07', '580.95.05'] },
  { cuda: '13.1', drivers: ['590.44.01', '590.48.01'] },
  { cuda: '13.2', drivers: ['595.45.04', '595.58.03', '595.71.05'] },
];

/**
 * Minor-version compatibility (runtime-facts 4.1, Table 2): any driver of the major's
 * branch runs its later minors, with caveats. 13.x: >= 580; 12.x: >= 525; 11.x: >= 450.
 */
export const MINOR_COMPAT_MIN_DRIVER: Readonly<Record<number, string>> = { 11: '450', 12: '525', 13: '580' };

/** Compare dotted version strings numerically: '580.65.06' > '575.57.08', '570.26' < '570.124.06'. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((p) => Number.parseInt(p, 10) || 0);
  const pb = b.split('.').map((p) => Number.parseInt(p, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return 0;
}

/** The CUDA an image is built on, from its config's environment. */
export interface ImageCuda {
  /** 'X.Y' or 'X.Y.Z' (CUDA_VERSION), or 'X.Y' from NVIDIA_REQUIRE_CUDA's cuda>=X.Y. */
  version: string;
  /** Where the version came from, for the report. */
  source: 'CUDA_VERSION' | 'NVIDIA_REQUIRE_CUDA' | 'given';
  /** The raw NVIDIA_REQUIRE_CUDA, which nvidia-container-cli enforces at container start. */
  requireCuda?: string;
}

/**
 * Read CUDA_VERSION / NVIDIA_REQUIRE_CUDA from an image config's `Env` (`KEY=value`
 * strings, as in an OCI image config's `config.Env`). Undefined when neither is set.
 */
export function imageCudaFromEnv(env: readonly string[]): ImageCuda | undefined {
  const value = (key: string) =>
    env
      .find((entry) => entry.startsWith(`${key}=`))
      ?.slice(key.length + 1)
      .trim() || undefined;
  const cudaVersion = value('CUDA_VERSION');
  const requireCuda = value('NVIDIA_REQUIRE_CUDA');
  const required = requireCuda ? /cuda>=(\d+\.\d+)/.exec(requireCuda)?.[1] : undefined;
  const base = requireCuda ? { requireCuda } : {};
  if (cudaVersion && /^\d+\.\d+/.test(cudaVersion))
    return { version: cudaVersion, source: 'CUDA_VERSION', ...base };
  if (required) return { version: required, source: 'NVIDIA_REQUIRE_CUDA', ...base };
  return undefined;
}

/** An OCI image config document (`{"config":{"Env":[...]}}`) to its CUDA, or undefined. */
export function imageCudaFromConfig(config: unknown): ImageCuda | undefined {
  const env = (config as { config?: { Env?: unknown } } | null)?.config?.Env;
  if (!Array.isArray(env)) return undefined;
  return imageCudaFromEnv(env.filter((e): e is string => typeof e === 'string'));
}

export interface DriverRequirement {
  /** 'X.Y' of the image. */
  cuda: string;
  /** The update the image's patch number names (0 = GA). */
  update: number;
  /** The toolkit table's minimum driver for that CUDA and update. */
  minDriver: string;
  /** The driver branch that runs it under minor-version compatibility. */
  minorCompatDriver?: string;
  /** Set when the patch number is past the table's last update for that minor. */
  beyondTable?: boolean;
}

/** The table row for an image CUDA version, or undefined when the minor is not in the table. */
export function driverRequirement(cudaVersion: string): DriverRequirement | undefined {
  const [major = '', minor = '', patch = '0'] = cudaVersion.split('.');
  const cuda = `${major}.${minor}`;
  const row = CUDA_DRIVER_TABLE.find((r) => r.cuda === cuda);
  if (!row) return undefined;
  const update = Number.parseInt(patch, 10) || 0;
  const known = Math.min(update, row.drivers.length - 1);
  const requirement: DriverRequirement = { cuda, update, minDriver: row.drivers[known] as string };
  const compat = MINOR_COMPAT_MIN_DRIVER[Number(major)];
  if (compat) requirement.minorCompatDriver = compat;
  if (update > row.drivers.length - 1) requirement.beyondTable = true;
  return requirement;
}

export interface DriverVerdict {
  status: 'ok' | 'warn' | 'fail';
  detail: string;
  hint?: string;
  requirement?: DriverRequirement;
}

/**
 * Judge the host driver against the image CUDA. Per runtime-facts 4.1's recommendation:
 * require the toolkit-table driver; within the same major's minor-compatibility range
 * only warn, since nvidia-container-cli may still refuse the image's NVIDIA_REQUIRE_CUDA.
 */
export function judgeDriver(driverVersion: string, image: ImageCuda): DriverVerdict {
  const requirement = driverRequirement(image.version);
  const from = `CUDA ${image.version} (${image.source})`;
  if (!requirement) {
    return {
      status: 'warn',
      detail: `the image's ${from} is not in the driver table this apertus knows (11.8 to 13.2); driver ${driverVersion} not judged`,
      hint: "Check NVIDIA's CUDA release notes (Table 3) for the minimum driver of that CUDA version.",
    };
  }
  const need = `CUDA ${requirement.cuda}${requirement.update > 0 ? ` Update ${requirement.update}` : ''} needs driver >= ${requirement.minDriver}`;
  if (compareVersions(driverVersion, requirement.minDriver) >= 0) {
    return { status: 'ok', detail: `driver ${driverVersion} runs the image's ${from}: ${need}`, requirement };
  }
  const branch = requirement.minorCompatDriver;
  if (branch && compareVersions(driverVersion, branch) >= 0) {
    return {
      status: 'warn',
      detail: `driver ${driverVersion} is older than the ${requirement.minDriver} that ${from} lists, but in the ${branch} branch, so it may run under CUDA minor-version compatibility`,
      hint: `Upgrade the driver to >= ${requirement.minDriver}; until then the container runtime may refuse the image ("unsatisfied condition: cuda>=${requirement.cuda}") unless NVIDIA_DISABLE_REQUIRE=1 is set.`,
      requirement,
    };
  }
  return {
    status: 'fail',
    detail: `driver ${driverVersion} is too old for the image's ${from}: ${need}${branch ? ` (any CUDA ${requirement.cuda.split('.')[0]}.x needs >= ${branch})` : ''}`,
    hint: `Install NVIDIA driver ${requirement.minDriver} or newer on the host, or bundle an image built on a CUDA that driver ${driverVersion} runs (${describeNewestCuda(driverVersion)}).`,
    requirement,
  };
}

/** The newest CUDA (X.Y, with update) in the table whose minimum driver `driverVersion` meets. */
export function newestCudaFor(driverVersion: string): { cuda: string; update: number } | undefined {
  let best: { cuda: string; update: number } | undefined;
  for (const row of CUDA_DRIVER_TABLE) {
    row.drivers.forEach((min, update) => {
      if (compareVersions(driverVersion, min) >= 0) best = { cuda: row.cuda, update };
    });
  }
  return best;
}

function describeNewestCuda(driverVersion: string): string {
  const newest = newestCudaFor(driverVersion);
  if (!newest) return `older than CUDA ${CUDA_DRIVER_TABLE[0]?.cuda}, which no current vLLM image uses`;
  const cu129 =
    newest.cuda === '12.9' && newest.update >= 1 ? '; vLLM >= 0.20 publishes such images as -cu129 tags' : '';
  return `up to CUDA ${newest.cuda}${newest.update > 0 ? ` Update ${newest.update}` : ''}${cu129}`;
}
