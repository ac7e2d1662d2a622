/** nvidia-smi reports memory in MiB (runtime-facts 4.3); everything else here counts bytes. */
export const MIB = 1024 * 1024;
export const GIB = 1024 * MIB;

/** Decimal gigabytes, as model cards and disk vendors count ("16 GB of weights"). */
export function formatGB(bytes: number): string {
  const gb = bytes / 1e9;
  return `${gb >= 100 ? gb.toFixed(0) : gb.toFixed(1)} GB`;
}

/** Binary units for KV-cache sizes, which are powers of two ("128 KiB per token"). */
export function formatBinary(bytes: number): string {
  if (bytes >= GIB) return `${(bytes / GIB).toFixed(1)} GiB`;
  if (bytes >= MIB) return `${(bytes / MIB).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(bytes % 1024 === 0 ? 0 : 1)} KiB`;
  return `${bytes} B`;
}
