/**
 * IEEE 754 half precision (f16) and bfloat16 (bf16) conversions.
 *
 * `f32ToF16` and `f32ToBf16` round to nearest, ties to even, produce
 * subnormals, overflow to ±infinity, and keep NaN a (quiet) NaN. Bit patterns
 * are plain numbers (0..65535); byte buffers are little-endian.
 *
 * @module
 */

import { UsageError } from "../errors.ts";

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Converts a number to the nearest f16 bit pattern (after rounding it to f32,
 * as a C `(float)` cast would), ties to even.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { f32ToF16 } from "./half.ts";
 * assert.deepStrictEqual([f32ToF16(1), f32ToF16(65504)], [0x3c00, 0x7bff]);
 * ```
 */
export function f32ToF16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) {
    // infinity or NaN (keep the top payload bits, force quiet)
    return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  }
  const e = exp - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e > 0) {
    let h = (e << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++; // may carry into the exponent (→ inf): correct
    return sign | h;
  }
  // f16 subnormal (or zero): value / 2^-24 = M * 2^(exp - 126)
  const shift = 126 - exp; // >= 14
  if (shift > 24) return sign; // below half the smallest subnormal (f32 subnormals included)
  const m = mant | 0x800000;
  let h = m >>> shift;
  const rest = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (h & 1))) h++;
  return sign | h;
}

/**
 * Converts an f16 bit pattern to its exact value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { f16ToF32 } from "./half.ts";
 * assert.deepStrictEqual([f16ToF32(0x3c00), f16ToF32(0x0001) === 2 ** -24], [1, true]);
 * ```
 */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (exp === 0) return sign * m * 2 ** -24;
  if (exp === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1024 + m) * 2 ** (exp - 25);
}

/**
 * Converts a bf16 bit pattern to its exact value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bf16ToF32 } from "./half.ts";
 * assert.deepStrictEqual([bf16ToF32(0x3f80), bf16ToF32(0xc000)], [1, -2]);
 * ```
 */
export function bf16ToF32(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0];
}

/**
 * Converts a number to the nearest bf16 bit pattern (after rounding it to
 * f32), ties to even; NaN stays a quiet NaN.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { f32ToBf16 } from "./half.ts";
 * assert.deepStrictEqual([f32ToBf16(1), f32ToBf16(-2)], [0x3f80, 0xc000]);
 * ```
 */
export function f32ToBf16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) {
    return (b >>> 16) | 0x40;
  }
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

let tableF16: Float32Array | null = null;

/**
 * A 65536-entry table: `table[h]` is the value of f16 bit pattern `h`.
 * Built on first use.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { f16Table as table } from "./half.ts";
 * assert.deepStrictEqual(table()[0x3c00], 1);
 * ```
 */
export function f16Table(): Float32Array {
  if (!tableF16) {
    const t = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) t[h] = f16ToF32(h);
    tableF16 = t;
  }
  return tableF16;
}

/** A Uint16Array over `bytes` (copying when unaligned or on a big-endian host). */
function u16View(bytes: Uint8Array): Uint16Array {
  const n = bytes.length >>> 1;
  if (LITTLE_ENDIAN && bytes.byteOffset % 2 === 0) {
    return new Uint16Array(bytes.buffer, bytes.byteOffset, n);
  }
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = bytes[2 * i] | (bytes[2 * i + 1] << 8);
  return out;
}

/**
 * Decodes little-endian `F32`, `F16` or `BF16` bytes into a new Float32Array.
 *
 * @throws {UsageError} when the byte count is not a multiple of the element
 * size or the dtype is not one of the three.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toFloat32 } from "./half.ts";
 * assert.deepStrictEqual(toFloat32(new Uint8Array([0x00, 0x3c, 0x80, 0x3f]), "F16"), new Float32Array([1, 1.875]));
 * ```
 */
export function toFloat32(
  bytes: Uint8Array,
  dtype: "F32" | "F16" | "BF16",
): Float32Array {
  const size = dtype === "F32"
    ? 4
    : dtype === "F16" || dtype === "BF16"
    ? 2
    : 0;
  if (size === 0) {
    throw new UsageError(
      `toFloat32: unsupported dtype ${JSON.stringify(dtype)}`,
    );
  }
  if (bytes.length % size !== 0) {
    throw new UsageError(
      `toFloat32: ${bytes.length} bytes is not a whole number of ${dtype} values`,
    );
  }
  const n = bytes.length / size;
  if (dtype === "F32") {
    if (LITTLE_ENDIAN) {
      const out = new Float32Array(n);
      new Uint8Array(out.buffer).set(bytes);
      return out;
    }
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
    return out;
  }
  const src = u16View(bytes);
  const out = new Float32Array(n);
  if (dtype === "F16") {
    const t = f16Table();
    for (let i = 0; i < n; i++) out[i] = t[src[i]];
  } else {
    const o = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) o[i] = src[i] << 16;
  }
  return out;
}

/**
 * Encodes values as little-endian `F32`, `F16` or `BF16` bytes (round to
 * nearest even for the 16-bit types).
 *
 * @throws {UsageError} for another dtype.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fromFloat32 } from "./half.ts";
 * assert.deepStrictEqual(fromFloat32(new Float32Array([1]), "BF16"), new Uint8Array([0x80, 0x3f]));
 * ```
 */
export function fromFloat32(
  values: ArrayLike<number>,
  dtype: "F32" | "F16" | "BF16",
): Uint8Array {
  const n = values.length;
  if (dtype === "F32") {
    const out = new Uint8Array(4 * n);
    const dv = new DataView(out.buffer);
    for (let i = 0; i < n; i++) dv.setFloat32(4 * i, values[i], true);
    return out;
  }
  if (dtype !== "F16" && dtype !== "BF16") {
    throw new UsageError(
      `fromFloat32: unsupported dtype ${JSON.stringify(dtype)}`,
    );
  }
  const out = new Uint8Array(2 * n);
  const conv = dtype === "F16" ? f32ToF16 : f32ToBf16;
  if (LITTLE_ENDIAN) {
    const o = new Uint16Array(out.buffer);
    for (let i = 0; i < n; i++) o[i] = conv(values[i]);
    return out;
  }
  for (let i = 0; i < n; i++) {
    const h = conv(values[i]);
    out[2 * i] = h & 0xff;
    out[2 * i + 1] = h >>> 8;
  }
  return out;
}
