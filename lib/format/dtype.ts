/**
 * The safetensors element types (dtypes) and their sizes.
 *
 * Names are the variant names of the reference library's `Dtype` enum
 * (huggingface/safetensors `tensor.rs`); sizes are given in bits because a few
 * dtypes (`F4`, `F6_E2M3`, `F6_E3M2`) are narrower than a byte.
 *
 * @module
 */

import { UsageError } from "../errors.ts";

/** Bit width of every dtype the safetensors format defines. */
const BITS: Readonly<Record<Dtype, number>> = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F8_E4M3FNUZ: 8,
  F8_E5M2FNUZ: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
};

/**
 * A safetensors dtype name, e.g. `"F32"`, `"BF16"`, `"I8"`.
 *
 * @example
 * ```ts
 * import type { Dtype } from "./dtype.ts";
 * const d: Dtype = "BF16";
 * console.log(d);
 * ```
 */
export type Dtype =
  | "BOOL"
  | "F4"
  | "F6_E2M3"
  | "F6_E3M2"
  | "U8"
  | "I8"
  | "F8_E5M2"
  | "F8_E4M3"
  | "F8_E8M0"
  | "F8_E4M3FNUZ"
  | "F8_E5M2FNUZ"
  | "I16"
  | "U16"
  | "F16"
  | "BF16"
  | "I32"
  | "U32"
  | "F32"
  | "C64"
  | "F64"
  | "I64"
  | "U64";

/**
 * Every dtype name, in the reference library's enum order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DTYPES } from "./dtype.ts";
 * assert.deepStrictEqual(DTYPES.includes("F16"), true);
 * ```
 */
export const DTYPES: readonly Dtype[] = Object.freeze(
  Object.keys(BITS) as Dtype[],
);

/**
 * Whether `s` is a known safetensors dtype name (case-sensitive).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isDtype } from "./dtype.ts";
 * assert.deepStrictEqual([isDtype("F32"), isDtype("f32"), isDtype("Q4")], [true, false, false]);
 * ```
 */
export function isDtype(s: unknown): s is Dtype {
  return typeof s === "string" && Object.hasOwn(BITS, s);
}

/**
 * Bit width of one element of `dtype`.
 *
 * @throws {UsageError} when `dtype` is not a safetensors dtype.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dtypeBits } from "./dtype.ts";
 * assert.deepStrictEqual([dtypeBits("BF16"), dtypeBits("F4")], [16, 4]);
 * ```
 */
export function dtypeBits(dtype: string): number {
  if (!isDtype(dtype)) {
    throw new UsageError(`unknown safetensors dtype ${JSON.stringify(dtype)}`);
  }
  return BITS[dtype];
}

/**
 * Bytes per element of `dtype`. Sub-byte dtypes give a fraction (`F4` → 0.5,
 * `F6_E2M3` → 0.75); use {@link tensorByteLength} for whole tensors.
 *
 * @throws {UsageError} when `dtype` is not a safetensors dtype.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dtypeBytes } from "./dtype.ts";
 * assert.deepStrictEqual([dtypeBytes("F32"), dtypeBytes("F16"), dtypeBytes("F4")], [4, 2, 0.5]);
 * ```
 */
export function dtypeBytes(dtype: string): number {
  return dtypeBits(dtype) / 8;
}

/**
 * Number of elements of a tensor of `shape` (1 for the scalar shape `[]`), or
 * `null` when a dimension is not a non-negative safe integer or the product
 * exceeds `Number.MAX_SAFE_INTEGER`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shapeNumel } from "./dtype.ts";
 * assert.deepStrictEqual([shapeNumel([2, 3]), shapeNumel([]), shapeNumel([-1])], [6, 1, null]);
 * ```
 */
export function shapeNumel(shape: readonly unknown[]): number | null {
  let n = 1n;
  let zero = false;
  for (const d of shape) {
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) return null;
    if (d === 0) zero = true;
    else n *= BigInt(d);
  }
  if (zero) return 0;
  return n > BigInt(Number.MAX_SAFE_INTEGER) ? null : Number(n);
}

/**
 * Byte size of a tensor of `dtype` and `shape`, or `null` when the shape is
 * invalid (see {@link shapeNumel}), or when a sub-byte tensor does not end on a
 * byte boundary (the reference library's `MisalignedSlice`).
 *
 * @throws {UsageError} when `dtype` is not a safetensors dtype.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tensorByteLength } from "./dtype.ts";
 * assert.deepStrictEqual(tensorByteLength("F32", [1, 2, 3]), 24);
 * assert.equal(tensorByteLength("F4", [3]), null); // 12 bits
 * ```
 */
export function tensorByteLength(
  dtype: string,
  shape: readonly unknown[],
): number | null {
  const bits = dtypeBits(dtype);
  const numel = shapeNumel(shape);
  if (numel === null) return null;
  const total = BigInt(numel) * BigInt(bits);
  if (total % 8n !== 0n) return null;
  const bytes = total / 8n;
  return bytes > BigInt(Number.MAX_SAFE_INTEGER) ? null : Number(bytes);
}
