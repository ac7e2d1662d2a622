/**
 * What a host's NVIDIA GPUs are, merged from every source the probe collected:
 * `--query-gpu` first, then `nvidia-smi -q -x` and /proc/driver/nvidia/version for
 * fields the query lacks, then the name table for the compute capability.
 */
import { computeCapabilityFromName } from './compute-capability.js';
import {
  type ListedGpu,
  migProfileBytes,
  NVIDIA_SMI_COMMANDS,
  numberField,
  parseDriverVersionFile,
  parseGpuList,
  parseNvidiaSmiVersion,
  parseQueryGpu,
  QUERY_GPU_FIELDS,
  QUERY_GPU_FIELDS_WITHOUT_COMPUTE_CAP,
  type QueryGpuRow,
} from './nvidia-smi.js';
import { type NvidiaSmiXml, parseNvidiaSmiXml, type XmlGpu } from './nvidia-smi-xml.js';
import { MIB } from './units.js';

/** One command's output as the probe recorded it (stdout and stderr together). */
export interface CommandOutput {
  output: string;
  exitCode: number;
}

/** Look up what a command printed; undefined when the probe did not run it. */
export type CommandOutputs = (command: string) => CommandOutput | undefined;

export type MigMode = 'enabled' | 'disabled' | 'unsupported' | 'unknown';

export interface MigDevice {
  profile: string;
  index: number;
  uuid: string;
  /** From `-q -x` when present, else what the profile name promises. */
  memoryBytes?: number;
  memorySource?: 'nvidia-smi -q -x' | 'profile name';
}

export interface GpuDevice {
  index: number;
  uuid?: string;
  name: string;
  pciBusId?: string;
  memoryTotalBytes?: number;
  memoryUsedBytes?: number;
  memoryFreeBytes?: number;
  computeCapability?: string;
  computeCapabilitySource?: 'nvidia-smi' | 'name table';
  migMode: MigMode;
  migDevices: MigDevice[];
}

export type GpuInventory =
  | {
      state: 'ok';
      driverVersion?: string;
      /** The highest CUDA the driver supports (nvidia-smi banner, `--version` or `-q -x`). */
      driverCudaVersion?: string;
      gpus: GpuDevice[];
      /** Which fallbacks were needed, in words, for the report. */
      notes: string[];
    }
  | {
      /** nvidia-smi is not installed (exit 127); `kernelModule` says whether a driver is loaded anyway. */
      state: 'no-nvidia-smi';
      kernelModuleVersion?: string;
      detail: string;
    }
  | { state: 'driver-not-loaded'; detail: string }
  | { state: 'no-devices'; driverVersion?: string; detail: string }
  | { state: 'error'; detail: string };

function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '') ?? ''
  );
}

function migMode(value: string | undefined): MigMode {
  if (value === undefined) return 'unknown';
  if (/^enabled$/i.test(value)) return 'enabled';
  if (/^disabled$/i.test(value)) return 'disabled';
  return 'unknown';
}

/** Build the inventory from the probe's outputs. Never throws: what cannot be read is reported. */
export function readGpuInventory(outputs: CommandOutputs): GpuInventory {
  const query = outputs(NVIDIA_SMI_COMMANDS.query);
  const fallbackQuery = outputs(NVIDIA_SMI_COMMANDS.queryWithoutComputeCap);
  const list = outputs(NVIDIA_SMI_COMMANDS.list);
  const xmlOutput = outputs(NVIDIA_SMI_COMMANDS.xml);
  const driverFile = outputs(NVIDIA_SMI_COMMANDS.driverVersionFile);
  const versionOutput = outputs(NVIDIA_SMI_COMMANDS.version);
  const kernelModuleVersion =
    driverFile?.exitCode === 0 ? parseDriverVersionFile(driverFile.output) : undefined;

  const attempts = [query, fallbackQuery, list, xmlOutput].filter((o): o is CommandOutput => o !== undefined);
  if (
    attempts.length === 0 ||
    attempts.every((o) => o.exitCode === 127 || (o.exitCode !== 0 && /not found/i.test(o.output)))
  ) {
    return {
      state: 'no-nvidia-smi',
      ...(kernelModuleVersion ? { kernelModuleVersion } : {}),
      detail: kernelModuleVersion
        ? `nvidia-smi is not installed, though NVIDIA kernel module ${kernelModuleVersion} is loaded`
        : 'no NVIDIA driver: nvidia-smi is not installed and /proc/driver/nvidia/version does not exist',
    };
  }
  const failedAll = attempts.every((o) => o.exitCode !== 0);
  const communicate = attempts.find((o) => /couldn't communicate with the NVIDIA driver/i.test(o.output));
  if (failedAll && communicate) {
    return {
      state: 'driver-not-loaded',
      detail: `the NVIDIA driver is not loaded: ${firstLine(communicate.output)}`,
    };
  }
  const noDevices = attempts.find((o) => /No devices were found/i.test(o.output));
  if (failedAll && noDevices) {
    return {
      state: 'no-devices',
      ...(kernelModuleVersion ? { driverVersion: kernelModuleVersion } : {}),
      detail: 'the NVIDIA driver is loaded but sees no GPU ("No devices were found")',
    };
  }

  const notes: string[] = [];
  let rows: QueryGpuRow[] = [];
  let capabilityFromQuery = false;
  if (query?.exitCode === 0) {
    rows = parseQueryGpu(query.output, QUERY_GPU_FIELDS);
    capabilityFromQuery = true;
  } else if (fallbackQuery?.exitCode === 0) {
    rows = parseQueryGpu(fallbackQuery.output, QUERY_GPU_FIELDS_WITHOUT_COMPUTE_CAP);
    notes.push(
      /not a valid field/i.test(query?.output ?? '')
        ? 'this driver has no compute_cap query field (older than R510): compute capability from the GPU name'
        : `the full GPU query failed (${firstLine(query?.output ?? '')}); used the query without compute_cap`,
    );
  }
  const xml: NvidiaSmiXml | undefined =
    xmlOutput?.exitCode === 0 && xmlOutput.output.includes('<nvidia_smi_log')
      ? parseNvidiaSmiXml(xmlOutput.output)
      : undefined;
  const listed: ListedGpu[] = list?.exitCode === 0 ? parseGpuList(list.output) : [];

  if (rows.length === 0 && xml && xml.gpus.length > 0) {
    notes.push('the GPU query gave nothing readable: GPUs read from nvidia-smi -q -x');
  } else if (rows.length === 0 && listed.length > 0) {
    notes.push('the GPU query gave nothing readable: GPUs read from nvidia-smi -L (no memory sizes)');
  }
  const count = Math.max(rows.length, xml?.gpus.length ?? 0, listed.length);
  if (count === 0) {
    const failure = attempts.find((o) => o.exitCode !== 0);
    return {
      state: 'error',
      detail: failure
        ? failure.exitCode === 124
          ? 'nvidia-smi did not answer within 20 s: the driver is hung or a GPU fell off the bus'
          : `nvidia-smi failed (exit ${failure.exitCode}): ${firstLine(failure.output)}`
        : 'nvidia-smi answered, but its output named no GPU',
    };
  }

  const gpus: GpuDevice[] = [];
  const usedXml = new Set<string>();
  for (let i = 0; i < count; i++) {
    const row = rows[i];
    const index = numberField(row?.index) ?? i;
    const xmlGpu = matchXmlGpu(xml, row, i);
    const listedGpu = listed.find((g) => g.index === index) ?? listed[i];
    const gpu = mergeGpu(index, row, xmlGpu, listedGpu, capabilityFromQuery, usedXml);
    gpus.push(gpu);
  }
  if (usedXml.size > 0) notes.push(`from nvidia-smi -q -x: ${[...usedXml].sort().join(', ')}`);

  const driverVersion =
    rows.find((r) => r.driver_version)?.driver_version ?? xml?.driverVersion ?? kernelModuleVersion;
  if (!rows.some((r) => r.driver_version) && !xml?.driverVersion && kernelModuleVersion) {
    notes.push('driver version from /proc/driver/nvidia/version');
  }
  const driverCudaVersion =
    (versionOutput?.exitCode === 0 ? parseNvidiaSmiVersion(versionOutput.output).cudaVersion : undefined) ??
    xml?.cudaVersion;
  return {
    state: 'ok',
    ...(driverVersion ? { driverVersion } : {}),
    ...(driverCudaVersion ? { driverCudaVersion } : {}),
    gpus,
    notes,
  };
}

function matchXmlGpu(
  xml: NvidiaSmiXml | undefined,
  row: QueryGpuRow | undefined,
  position: number,
): XmlGpu | undefined {
  if (!xml) return undefined;
  const byUuid = row?.uuid ? xml.gpus.find((g) => g.uuid === row.uuid) : undefined;
  const byBus = row?.['pci.bus_id'] ? xml.gpus.find((g) => g.pciBusId === row['pci.bus_id']) : undefined;
  return byUuid ?? byBus ?? xml.gpus[position];
}

function mergeGpu(
  index: number,
  row: QueryGpuRow | undefined,
  xmlGpu: XmlGpu | undefined,
  listedGpu: ListedGpu | undefined,
  capabilityFromQuery: boolean,
  usedXml: Set<string>,
): GpuDevice {
  const pick = <T>(field: string, fromQuery: T | undefined, fromXml: T | undefined): T | undefined => {
    if (fromQuery !== undefined) return fromQuery;
    if (fromXml !== undefined) usedXml.add(field);
    return fromXml;
  };
  const name = pick('name', row?.name, xmlGpu?.name) ?? listedGpu?.name ?? `GPU ${index}`;
  const gpu: GpuDevice = { index, name, migMode: 'unknown', migDevices: [] };
  const uuid = pick('uuid', row?.uuid, xmlGpu?.uuid) ?? listedGpu?.uuid;
  if (uuid) gpu.uuid = uuid;
  const bus = pick('pci.bus_id', row?.['pci.bus_id'], xmlGpu?.pciBusId);
  if (bus) gpu.pciBusId = bus;
  const total = pick('memory.total', numberField(row?.['memory.total']), xmlGpu?.memoryTotalMiB);
  if (total !== undefined) gpu.memoryTotalBytes = total * MIB;
  const used = pick('memory.used', numberField(row?.['memory.used']), xmlGpu?.memoryUsedMiB);
  if (used !== undefined) gpu.memoryUsedBytes = used * MIB;
  const free = pick('memory.free', numberField(row?.['memory.free']), xmlGpu?.memoryFreeMiB);
  if (free !== undefined) gpu.memoryFreeBytes = free * MIB;

  const rawMig = row?.['mig.mode.current'];
  if (rawMig !== undefined) gpu.migMode = migMode(rawMig);
  else if (xmlGpu?.migCurrent !== undefined) {
    usedXml.add('mig.mode.current');
    gpu.migMode = migMode(xmlGpu.migCurrent);
  } else if (row) {
    // The query answered but printed [N/A] for MIG: a GPU without MIG support (L4, consumer cards).
    gpu.migMode = 'unsupported';
  }

  const capability = capabilityFromQuery ? row?.compute_cap : undefined;
  if (capability && /^\d+\.\d+$/.test(capability)) {
    gpu.computeCapability = capability;
    gpu.computeCapabilitySource = 'nvidia-smi';
  } else {
    const fromName = computeCapabilityFromName(name);
    if (fromName) {
      gpu.computeCapability = fromName;
      gpu.computeCapabilitySource = 'name table';
    }
  }

  const xmlMig = xmlGpu?.migDevices ?? [];
  gpu.migDevices = (listedGpu?.mig ?? []).map((device, i): MigDevice => {
    const fromXml = (xmlMig.find((d) => d.index === device.index) ?? xmlMig[i])?.memoryTotalMiB;
    const fromName = migProfileBytes(device.profile);
    const out: MigDevice = { profile: device.profile, index: device.index, uuid: device.uuid };
    if (fromXml !== undefined) {
      out.memoryBytes = fromXml * MIB;
      out.memorySource = 'nvidia-smi -q -x';
    } else if (fromName !== undefined) {
      out.memoryBytes = fromName;
      out.memorySource = 'profile name';
    }
    return out;
  });
  // -L lists MIG devices even where the query could not say MIG is on.
  if (gpu.migMode === 'unknown' && gpu.migDevices.length > 0) gpu.migMode = 'enabled';
  return gpu;
}
