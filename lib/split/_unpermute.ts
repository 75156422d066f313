/**
 * llama.cpp's Q/K row permutation (GGUF and llama.c files rotate adjacent
 * pairs), undone on whole rows so quantized rows move without dequantizing.
 *
 * @module
 */

import { FormatError } from "../errors.ts";

/** {@link unpermuteRows}, a shape that does not fit the heads being a FormatError. */
export function unpermuteChecked(
  path: string,
  name: string,
  bytes: Uint8Array,
  rowBytes: number,
  heads: number,
): Uint8Array {
  try {
    return unpermuteRows(bytes, rowBytes, heads);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    throw new FormatError(
      path,
      `tensor ${name}: ${e.message} (its shape does not match the head count)`,
    );
  }
}

/**
 * Undoes llama.cpp's Q/K row permutation on whole rows: `rows` rows of
 * `rowBytes` bytes each, in `heads` heads. Within a head of `hd` rows, HF row
 * `s·hd/2 + i` takes GGUF row `2i + s`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unpermuteRows } from "./_unpermute.ts";
 * // one head of 4 one-byte rows: GGUF order [r0 r1 r2 r3] = HF rows [0, 2, 1, 3]
 * assert.deepStrictEqual(Array.from(unpermuteRows(new Uint8Array([10, 11, 12, 13]), 1, 1)), [10, 12, 11, 13]);
 * ```
 */
export function unpermuteRows(
  bytes: Uint8Array,
  rowBytes: number,
  heads: number,
): Uint8Array {
  const rows = bytes.byteLength / rowBytes;
  if (
    !Number.isInteger(rows) || rows % heads !== 0 || (rows / heads) % 2 !== 0
  ) {
    throw new RangeError(`cannot unpermute ${rows} rows in ${heads} heads`);
  }
  const hd = rows / heads, half = hd / 2;
  const out = new Uint8Array(bytes.byteLength);
  for (let h = 0; h < heads; h++) {
    for (let s = 0; s < 2; s++) {
      for (let i = 0; i < half; i++) {
        const src = (h * hd + 2 * i + s) * rowBytes;
        const dst = (h * hd + s * half + i) * rowBytes;
        out.set(bytes.subarray(src, src + rowBytes), dst);
      }
    }
  }
  return out;
}
