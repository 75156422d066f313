/**
 * The Strata block layout of the packed encodings (see encoding.ts): blocks
 * of {@link QK} consecutive elements along a row of a 2-D weight
 * `[rows, cols]`, the last block of a row zero-padded, one f16 scale per
 * block in a separate tensor.
 *
 * @module
 */

import { UsageError } from "../errors.ts";

/**
 * Elements per quantization block.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { QK } from "./layout.ts";
 * assert.deepStrictEqual(QK, 32);
 * ```
 */
export const QK = 32;

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
