/**
 * The few fields of `nvidia-smi -q -x` the check falls back to when `--query-gpu` lacks
 * them. The document is flat, machine-written XML without attributes that matter to us,
 * so a handful of tag lookups replaces an XML dependency.
 */
import { numberField } from './nvidia-smi.js';

export interface XmlMigDevice {
  index: number;
  memoryTotalMiB?: number;
}

export interface XmlGpu {
  /** Position in the document, which is nvidia-smi's index order. */
  index: number;
  pciBusId?: string;
  name?: string;
  uuid?: string;
  memoryTotalMiB?: number;
  memoryUsedMiB?: number;
  memoryFreeMiB?: number;
  migCurrent?: string;
  migDevices: XmlMigDevice[];
}

export interface NvidiaSmiXml {
  driverVersion?: string;
  cudaVersion?: string;
  gpus: XmlGpu[];
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decode(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|apos);/g, (_, name: string) => ENTITIES[name] ?? '');
}

/** Inner text of every `<tag ...>...</tag>` in `xml`; none of the tags read here nest in themselves. */
function elements(xml: string, tag: string): string[] {
  const pattern = new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>`, 'g');
  return [...xml.matchAll(pattern)].map((m) => m[1] ?? '');
}

function element(xml: string, tag: string): string | undefined {
  return elements(xml, tag)[0];
}

/** Trimmed text of the first `<tag>`, or undefined when absent, empty or N/A. */
function text(xml: string | undefined, tag: string): string | undefined {
  if (xml === undefined) return undefined;
  const value = element(xml, tag);
  if (value === undefined) return undefined;
  const trimmed = decode(value).trim();
  return trimmed === '' || /^(N\/A|None|Not Supported)$/i.test(trimmed) ? undefined : trimmed;
}

function mib(xml: string | undefined, tag: string): number | undefined {
  return numberField(text(xml, tag));
}

export function parseNvidiaSmiXml(xml: string): NvidiaSmiXml {
  // The header fields come before the first <gpu>; reading them from that prefix keeps a
  // GPU's own <driver_version>-like fields (none today) from shadowing them.
  const firstGpu = xml.search(/<gpu[\s>]/);
  const head = firstGpu < 0 ? xml : xml.slice(0, firstGpu);
  const gpus = [...xml.matchAll(/<gpu(?:\s+id="([^"]*)")?\s*>([\s\S]*?)<\/gpu>/g)].map(
    (match, index): XmlGpu => {
      const whole = match[2] ?? '';
      const migDevicesXml = element(whole, 'mig_devices');
      // MIG devices carry their own memory fields; the GPU's are read with them cut out.
      const body = whole.replace(/<mig_devices>[\s\S]*?<\/mig_devices>/, '');
      const fb = element(body, 'fb_memory_usage');
      const migDevices = elements(migDevicesXml ?? '', 'mig_device').map((device, i): XmlMigDevice => {
        const total = mib(element(device, 'fb_memory_usage'), 'total');
        return {
          index: numberField(text(device, 'index')) ?? i,
          ...(total === undefined ? {} : { memoryTotalMiB: total }),
        };
      });
      const gpu: XmlGpu = { index, migDevices };
      const busId = text(body, 'pci_bus_id') ?? match[1];
      if (busId) gpu.pciBusId = busId;
      const name = text(body, 'product_name');
      if (name) gpu.name = name;
      const uuid = text(body, 'uuid');
      if (uuid) gpu.uuid = uuid;
      const total = mib(fb, 'total');
      if (total !== undefined) gpu.memoryTotalMiB = total;
      const used = mib(fb, 'used');
      if (used !== undefined) gpu.memoryUsedMiB = used;
      const free = mib(fb, 'free');
      if (free !== undefined) gpu.memoryFreeMiB = free;
      const mig = text(element(body, 'mig_mode'), 'current_mig');
      if (mig) gpu.migCurrent = mig;
      return gpu;
    },
  );
  const result: NvidiaSmiXml = { gpus };
  const driverVersion = text(head, 'driver_version');
  if (driverVersion) result.driverVersion = driverVersion;
  const cudaVersion = text(head, 'cuda_version');
  if (cudaVersion) result.cudaVersion = cudaVersion;
  return result;
}
