/**
 * The Strata block layout of the packed encodings (see encoding.ts): blocks
 * of {@link QK} consecutive elements along a row of a 2-D weight
 * `[rows, cols]`, the last block of a row zero-padded, one f16 scale per
 * block in a separate tensor.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { f16Table } from "./half.ts";

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

/** What {@link dequantizeBlocks} reads. */
export interface PackedBlocks {
  /** The caller's name, prefixed to the size error. */
  name: string;
  /** Rows of the weight. */
  rows: number;
  /** Columns of the weight. */
  cols: number;
  /** The packed data, `blockBytes` per block. */
  data: ArrayLike<number>;
  /** One f16 scale per block. */
  scales: Uint16Array;
  /** Bytes of data per block. */
  blockBytes: number;
}

/**
 * Checks packed blocks against `[rows, cols]` and dequantizes them to a
 * row-major f32 matrix (the padding dropped): `block` writes the `n` elements
 * of one block at `out[o..]` from its scale `d` (as f32) and its data at
 * `data[s..]`.
 *
 * @throws {UsageError} when the array sizes do not match rows and cols.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dequantizeBlocks } from "./layout.ts";
 * const data = new Int8Array(32).fill(3);
 * const scales = new Uint16Array([0x3c00]); // 1.0 in f16
 * const w = dequantizeBlocks(
 *   { name: "demo", rows: 1, cols: 2, data, scales, blockBytes: 32 },
 *   (out, d, o, s, n) => {
 *     for (let j = 0; j < n; j++) out[o + j] = d * data[s + j];
 *   },
 * );
 * assert.deepStrictEqual(w, new Float32Array([3, 3]));
 * ```
 */
export function dequantizeBlocks(
  blocks: PackedBlocks,
  block: (
    out: Float32Array,
    d: number,
    o: number,
    s: number,
    n: number,
  ) => void,
): Float32Array {
  const { name, rows, cols, data, scales, blockBytes } = blocks;
  checkDims(rows, cols);
  const nb = Math.ceil(cols / QK);
  if (data.length !== rows * nb * blockBytes || scales.length !== rows * nb) {
    throw new UsageError(
      `${name}: ${rows} x ${cols} needs ${
        rows * nb * blockBytes
      } data bytes and ${
        rows * nb
      } scales, got ${data.length} and ${scales.length}`,
    );
  }
  const t = f16Table();
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nb; b++) {
      block(
        out,
        t[scales[r * nb + b]],
        r * cols + b * QK,
        (r * nb + b) * blockBytes,
        Math.min(QK, cols - b * QK),
      );
    }
  }
  return out;
}
