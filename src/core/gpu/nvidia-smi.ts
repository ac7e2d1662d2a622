/**
 * The nvidia-smi commands the host check runs and parsers for their output. nvidia-smi's
 * output format "is not guaranteed to be backwards compatible" (its man page, via
 * runtime-facts 4.3), so every parser here tolerates missing, extra and `[N/A]` fields
 * and returns undefined rather than guessing.
 */

/** The fields asked of `--query-gpu`, in this order (the order of the real H100 capture). */
export const QUERY_GPU_FIELDS = [
  'index',
  'uuid',
  'name',
  'pci.bus_id',
  'driver_version',
  'compute_cap',
  'memory.total',
  'memory.used',
  'memory.free',
  'mig.mode.current',
] as const;
export type QueryGpuField = (typeof QUERY_GPU_FIELDS)[number];

/** Old drivers (R470) reject `compute_cap` and with it the whole query (runtime-facts 4.3). */
export const QUERY_GPU_FIELDS_WITHOUT_COMPUTE_CAP = QUERY_GPU_FIELDS.filter((f) => f !== 'compute_cap');

function queryCommand(fields: readonly string[]): string {
  return `nvidia-smi --query-gpu=${fields.join(',')} --format=csv,noheader,nounits`;
}

/** Command lines exactly as the probe runs them; transcripts are keyed by them. */
export const NVIDIA_SMI_COMMANDS = {
  query: queryCommand(QUERY_GPU_FIELDS),
  queryWithoutComputeCap: queryCommand(QUERY_GPU_FIELDS_WITHOUT_COMPUTE_CAP),
  list: 'nvidia-smi -L',
  version: 'nvidia-smi --version',
  xml: 'nvidia-smi -q -x',
  driverVersionFile: 'cat /proc/driver/nvidia/version',
} as const;

export type QueryGpuRow = Partial<Record<QueryGpuField, string>>;

/** Values nvidia-smi prints for a field it cannot report. */
function isUnavailable(value: string): boolean {
  return /^\[?(N\/A|Not Supported|Unknown Error|Insufficient Permissions|GPU requires reset|Not Found)\]?$/i.test(
    value,
  );
}

/**
 * Parse `--query-gpu=... --format=csv,noheader,nounits` output: one GPU per line, fields
 * separated by ", ". A line with more commas than fields (a product name with a comma)
 * keeps the extra pieces in `name`; a line with fewer fields is dropped as unreadable.
 */
export function parseQueryGpu(text: string, fields: readonly QueryGpuField[]): QueryGpuRow[] {
  const rows: QueryGpuRow[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let parts = line.split(',').map((part) => part.trim());
    if (parts.length < fields.length) continue;
    const nameAt = fields.indexOf('name');
    if (parts.length > fields.length && nameAt >= 0) {
      const extra = parts.length - fields.length;
      parts = [
        ...parts.slice(0, nameAt),
        parts.slice(nameAt, nameAt + extra + 1).join(', '),
        ...parts.slice(nameAt + extra + 1),
      ];
    }
    if (parts.length !== fields.length) continue;
    const row: QueryGpuRow = {};
    fields.forEach((field, i) => {
      const value = parts[i];
      if (value !== undefined && value !== '' && !isUnavailable(value)) row[field] = value;
    });
    rows.push(row);
  }
  return rows;
}

/** A number from a query field, with or without its unit ("81559" or "81559 MiB"). */
export function numberField(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(-?\d+(?:\.\d+)?)(?:\s*[A-Za-z%]+)?$/.exec(value.trim());
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

export interface ListedMigDevice {
  /** The MIG profile, e.g. '3g.40gb'. */
  profile: string;
  index: number;
  uuid: string;
}

export interface ListedGpu {
  index: number;
  name: string;
  uuid: string;
  mig: ListedMigDevice[];
}

/**
 * Parse `nvidia-smi -L`: `GPU 0: NAME (UUID: GPU-...)`, followed on MIG-enabled GPUs by
 * indented `MIG 3g.40gb Device 0: (UUID: MIG-...)` lines (runtime-facts 4.3).
 */
export function parseGpuList(text: string): ListedGpu[] {
  const gpus: ListedGpu[] = [];
  for (const line of text.split('\n')) {
    const gpu = /^GPU (\d+): (.+?) \(UUID: ([^)]+)\)\s*$/.exec(line);
    if (gpu) {
      gpus.push({ index: Number(gpu[1]), name: gpu[2] ?? '', uuid: gpu[3] ?? '', mig: [] });
      continue;
    }
    const mig = /^\s+MIG\s+(\S+)\s+Device\s+(\d+):\s*\(UUID:\s*([^)]+)\)/.exec(line);
    const current = gpus.at(-1);
    if (mig && current)
      current.mig.push({ profile: mig[1] ?? '', index: Number(mig[2]), uuid: mig[3] ?? '' });
  }
  return gpus;
}

/** `nvidia-smi --version` (newer drivers): the driver version and the highest CUDA it supports. */
export function parseNvidiaSmiVersion(text: string): { driverVersion?: string; cudaVersion?: string } {
  const driver = /^DRIVER version\s*:\s*(\S+)/im.exec(text)?.[1];
  const cuda = /^CUDA Version\s*:\s*(\S+)/im.exec(text)?.[1];
  return { ...(driver ? { driverVersion: driver } : {}), ...(cuda ? { cudaVersion: cuda } : {}) };
}

/**
 * The kernel module's version from /proc/driver/nvidia/version, in both wordings:
 * "NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build" (open module)
 * and "NVIDIA UNIX x86_64 Kernel Module  470.182.03  Fri Feb 24 ..." (proprietary).
 */
export function parseDriverVersionFile(text: string): string | undefined {
  const line = text.split('\n').find((l) => l.startsWith('NVRM version:'));
  if (!line) return undefined;
  return /Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)/.exec(line)?.[1];
}

/** The size in bytes a MIG profile name promises ('3g.40gb' -> 40 GB); decimal, so it errs small. */
export function migProfileBytes(profile: string): number | undefined {
  const gb = /\.(\d+)gb$/i.exec(profile)?.[1];
  return gb === undefined ? undefined : Number(gb) * 1e9;
}
