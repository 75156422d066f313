/**
 * Shapes of the Strata q8/q4 block layout: blocks of {@link QK} consecutive
 * elements along a row of a 2-D weight `[rows, cols]`, the last block of a
 * row zero-padded, one f16 scale per block.
 *
 * @module
 */

import { UsageError } from "../errors.ts";

/**
 * Elements per quantization block.
 *
 * @example
 * ```ts
 * import { QK } from "./layout.ts";
 * console.log(QK); // 32
 * ```
 */
export const QK = 32;

/**
 * The quantized formats.
 *
 * @example
 * ```ts
 * import type { QuantType } from "./layout.ts";
 * const t: QuantType = "q4";
 * console.log(t);
 * ```
 */
export type QuantType = "q8" | "q4";

/**
 * Safetensors dtypes and shapes of the packed data and the scales of a
 * `[rows, cols]` weight quantized as `type`.
 *
 * @throws {UsageError} when rows or cols is not a positive safe integer.
 * @example
 * ```ts
 * import { quantShapes } from "./layout.ts";
 * console.log(quantShapes("q4", 2, 37));
 * // { blocks: 2, data: { dtype: "U8", shape: [2, 32] }, scales: { dtype: "F16", shape: [2, 2] } }
 * ```
 */
export function quantShapes(type: QuantType, rows: number, cols: number): {
  blocks: number;
  data: { dtype: "I8" | "U8"; shape: [number, number] };
  scales: { dtype: "F16"; shape: [number, number] };
} {
  checkDims(rows, cols);
  const nb = Math.ceil(cols / QK);
  return {
    blocks: nb,
    data: type === "q8"
      ? { dtype: "I8", shape: [rows, nb * QK] }
      : { dtype: "U8", shape: [rows, nb * (QK / 2)] },
    scales: { dtype: "F16", shape: [rows, nb] },
  };
}

/**
 * Throws a {@link UsageError} unless rows and cols are positive safe integers
 * and, when given, `length === rows * cols`.
 *
 * @example
 * ```ts
 * import { checkDims } from "./layout.ts";
 * checkDims(2, 3, 6); // ok
 * ```
 */
export function checkDims(rows: number, cols: number, length?: number): void {
  if (
    !Number.isSafeInteger(rows) || rows <= 0 || !Number.isSafeInteger(cols) ||
    cols <= 0
  ) {
    throw new UsageError(
      `quantization needs positive integer rows and cols, got ${rows} x ${cols}`,
    );
  }
  if (length !== undefined && length !== rows * cols) {
    throw new UsageError(
      `quantization: ${length} values do not form a ${rows} x ${cols} matrix`,
    );
  }
}
