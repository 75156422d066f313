/**
 * Float64 reference of the embedding row gather, decoding the table's stored
 * bytes (the shard layouts of the team contract) element by element.
 *
 * @module
 */

/** An embedding table [rows, cols] exactly as stored in a shard. */
export type EmbedTable =
  | {
    dtype: "f32" | "f16" | "bf16";
    rows: number;
    cols: number;
    bytes: Uint8Array;
  }
  | {
    dtype: "q8" | "q4";
    rows: number;
    cols: number;
    /** q8: i8 [rows, nb·32]; q4: u8 [rows, nb·16]; nb = ceil(cols / 32). */
    data: Uint8Array;
    /** f16 bits [rows, nb]. */
    scales: Uint16Array;
  };

/**
 * IEEE half (binary16) bits → number.
 *
 * @example
 * ```ts
 * import { halfToNumber } from "./embed.ts";
 * console.log(halfToNumber(0x3c00)); // 1
 * ```
 */
export function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24; // subnormal
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * Element (r, c) of the table as a number.
 *
 * @example
 * ```ts
 * import { tableElement } from "./embed.ts";
 * const bytes = new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer);
 * console.log(tableElement({ dtype: "f32", rows: 2, cols: 2, bytes }, 1, 0)); // 3
 * ```
 */
export function tableElement(table: EmbedTable, r: number, c: number): number {
  const { cols } = table;
  const nb = Math.ceil(cols / 32); // blocks of 32 per row (q8/q4)
  switch (table.dtype) {
    case "f32": {
      const dv = new DataView(table.bytes.buffer, table.bytes.byteOffset);
      return dv.getFloat32((r * cols + c) * 4, true);
    }
    case "f16": {
      const dv = new DataView(table.bytes.buffer, table.bytes.byteOffset);
      return halfToNumber(dv.getUint16((r * cols + c) * 2, true));
    }
    case "bf16": {
      const dv = new DataView(table.bytes.buffer, table.bytes.byteOffset);
      const f = new DataView(new ArrayBuffer(4));
      f.setUint32(0, dv.getUint16((r * cols + c) * 2, true) << 16);
      return f.getFloat32(0);
    }
    case "q8": {
      const d = halfToNumber(table.scales[r * nb + Math.floor(c / 32)]);
      const q = (table.data[r * nb * 32 + c] << 24) >> 24; // i8
      return d * q;
    }
    case "q4": {
      const b = Math.floor(c / 32), j = c % 32;
      const d = halfToNumber(table.scales[r * nb + b]);
      const byte = table.data[r * nb * 16 + b * 16 + (j % 16)];
      const nibble = j < 16 ? byte & 15 : byte >> 4; // element j low, j + 16 high
      return d * (nibble - 8);
    }
  }
}

/**
 * out[t, :] = table[ids[t], :] decoded to numbers.
 *
 * @param ids [T]
 * @returns out [T, cols]
 *
 * @example
 * ```ts
 * import { embedRef } from "./embed.ts";
 * const bytes = new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer);
 * console.log(Array.from(embedRef({ dtype: "f32", rows: 2, cols: 2, bytes }, [1, 0]))); // [3, 4, 1, 2]
 * ```
 */
export function embedRef(
  table: EmbedTable,
  ids: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(ids.length * table.cols);
  for (let t = 0; t < ids.length; t++) {
    for (let c = 0; c < table.cols; c++) {
      out[t * table.cols + c] = tableElement(table, ids[t], c);
    }
  }
  return out;
}
