/**
 * Reads the header of a GGUF file (ggml docs/gguf.md; the writer is
 * src/core/tiny-model/gguf-writer.ts): metadata key/values and the tensor table, so the
 * fit calculation knows the model's shape and its weight bytes without loading weights.
 * Large arrays (a 131k-token vocabulary) are skipped, not kept.
 */
import { ApertusError } from '../errors.js';
import type { RangeReader } from './byte-range.js';

/** Scalars and short arrays; long arrays are summarised by their length only. */
export type GgufMetadataValue =
  | number
  | bigint
  | boolean
  | string
  | { arrayLength: number; items?: unknown[] };

export interface GgufHeader {
  version: number;
  tensorCount: number;
  metadata: Map<string, GgufMetadataValue>;
  /** Offset of the tensor data: the weights are the bytes from here to the end. */
  dataOffset: number;
}

/** Headers of real models are a few MB (vocabularies); more than this means a damaged file. */
const MAX_HEADER_BYTES = 512 * 1024 * 1024;
const CHUNK = 1024 * 1024;
const KEEP_ARRAY_ITEMS = 64;

/** Fixed-size gguf_type values and their widths, from ggml's gguf.h. */
const FIXED_SIZE: Record<number, number> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  10: 8,
  11: 8,
  12: 8,
};
const STRING = 8;
const ARRAY = 9;

class Cursor {
  private buffer = Buffer.alloc(0);
  private bufferStart = 0;
  offset = 0;

  constructor(
    private readonly read: RangeReader,
    private readonly what: string,
  ) {}

  private async ensure(length: number): Promise<void> {
    if (this.offset + length > MAX_HEADER_BYTES) this.fail('its header is larger than any real model has');
    const end = this.bufferStart + this.buffer.length;
    if (this.offset + length <= end) return;
    const keepFrom = this.offset - this.bufferStart;
    const want = Math.max(CHUNK, length);
    const more = await this.read(end, this.offset + want - end);
    this.buffer = Buffer.concat([this.buffer.subarray(keepFrom), more]);
    this.bufferStart = this.offset;
    if (this.buffer.length < length) this.fail('the file ends inside its header');
  }

  fail(why: string): never {
    throw new ApertusError('gguf-invalid', `${this.what} is not a readable GGUF file: ${why}.`, {
      kind: 'operation',
      hint: 'Check that the file is a complete GGUF model (llama.cpp format); copy it again if it was truncated.',
    });
  }

  private at(): number {
    return this.offset - this.bufferStart;
  }

  async bytes(length: number): Promise<Buffer> {
    await this.ensure(length);
    const out = this.buffer.subarray(this.at(), this.at() + length);
    this.offset += length;
    return out;
  }

  async skip(length: number): Promise<void> {
    // Skipping past the buffer needs no read: the next ensure() refills from the new offset.
    const inBuffer = this.bufferStart + this.buffer.length - this.offset;
    if (length > inBuffer) {
      this.offset += length;
      if (this.offset > MAX_HEADER_BYTES) this.fail('its header is larger than any real model has');
      this.buffer = Buffer.alloc(0);
      this.bufferStart = this.offset;
      return;
    }
    this.offset += length;
  }

  async u32(): Promise<number> {
    return (await this.bytes(4)).readUInt32LE(0);
  }

  async u64(): Promise<number> {
    const value = (await this.bytes(8)).readBigUInt64LE(0);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) this.fail('a count or length is out of range');
    return Number(value);
  }

  async string(): Promise<string> {
    const length = await this.u64();
    return (await this.bytes(length)).toString('utf8');
  }

  async scalar(type: number): Promise<number | bigint | boolean | string> {
    const b = await this.bytes(FIXED_SIZE[type] ?? this.fail(`unknown value type ${type}`));
    switch (type) {
      case 0:
        return b.readUInt8(0);
      case 1:
        return b.readInt8(0);
      case 2:
        return b.readUInt16LE(0);
      case 3:
        return b.readInt16LE(0);
      case 4:
        return b.readUInt32LE(0);
      case 5:
        return b.readInt32LE(0);
      case 6:
        return b.readFloatLE(0);
      case 7:
        return b.readUInt8(0) !== 0;
      case 10:
        return b.readBigUInt64LE(0);
      case 11:
        return b.readBigInt64LE(0);
      default:
        return b.readDoubleLE(0);
    }
  }
}

async function readValue(cursor: Cursor, type: number): Promise<GgufMetadataValue> {
  if (type === STRING) return cursor.string();
  if (type !== ARRAY) return cursor.scalar(type);
  const itemType = await cursor.u32();
  const length = await cursor.u64();
  const items: unknown[] = [];
  for (let i = 0; i < length; i++) {
    if (itemType === STRING) {
      const size = await cursor.u64();
      if (i < KEEP_ARRAY_ITEMS) items.push((await cursor.bytes(size)).toString('utf8'));
      else await cursor.skip(size);
    } else if (itemType === ARRAY) {
      cursor.fail('nested arrays are not part of GGUF');
    } else {
      const width = FIXED_SIZE[itemType] ?? cursor.fail(`unknown array item type ${itemType}`);
      if (length > KEEP_ARRAY_ITEMS) {
        await cursor.skip(width * length);
        break;
      }
      items.push(await cursor.scalar(itemType));
    }
  }
  return length <= KEEP_ARRAY_ITEMS ? { arrayLength: length, items } : { arrayLength: length };
}

/** Read a GGUF header (v2 or v3). `what` names the file in errors. */
export async function readGgufHeader(read: RangeReader, what: string): Promise<GgufHeader> {
  const cursor = new Cursor(read, what);
  const magic = (await cursor.bytes(4)).toString('latin1');
  if (magic !== 'GGUF') cursor.fail(`it starts with ${JSON.stringify(magic)}, not "GGUF"`);
  const version = await cursor.u32();
  if (version < 2)
    cursor.fail(`GGUF version ${version} predates 64-bit counts (v2); convert it with a current llama.cpp`);
  const tensorCount = await cursor.u64();
  const kvCount = await cursor.u64();
  const metadata = new Map<string, GgufMetadataValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = await cursor.string();
    const type = await cursor.u32();
    metadata.set(key, await readValue(cursor, type));
  }
  for (let i = 0; i < tensorCount; i++) {
    await cursor.skip(await cursor.u64()); // name
    const dims = await cursor.u32();
    await cursor.skip(8 * dims + 4 + 8); // dims, ggml type, offset
  }
  const alignmentValue = metadata.get('general.alignment');
  const alignment = typeof alignmentValue === 'number' && alignmentValue > 0 ? alignmentValue : 32;
  const dataOffset = Math.ceil(cursor.offset / alignment) * alignment;
  return { version, tensorCount, metadata, dataOffset };
}

/** A numeric metadata value, or the largest item of a per-layer array (head_count_kv on some models). */
export function ggufNumber(header: GgufHeader, key: string): number | undefined {
  const value = header.metadata.get(key);
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  if (typeof value === 'object' && value.items && value.items.length > 0) {
    const numbers = value.items.map(Number).filter((n) => Number.isFinite(n));
    return numbers.length > 0 ? Math.max(...numbers) : undefined;
  }
  return undefined;
}

export function ggufString(header: GgufHeader, key: string): string | undefined {
  const value = header.metadata.get(key);
  return typeof value === 'string' ? value : undefined;
}
