/**
 * A slice of a 1-D source tensor as a tensor of its own (split time).
 *
 * @module
 */
import { FormatError, UnsupportedError } from "../errors.ts";
import type { SourceTensor } from "./source.ts";

/**
 * Elements [start, start + n) of the 1-D float tensor `src`, as a tensor of
 * its own named `lt.name` (a fused bias written apart, see stepTensors in
 * lib/model/architectures.ts).
 *
 * @example
 * ```ts ignore
 * const q = sliceOf(qkvBias, { name: "….bias.q", shape: [qDim], slice: { start: 0 } });
 * ```
 */
export function sliceOf(
  src: SourceTensor,
  lt: { name: string; shape: number[]; slice?: { start: number } },
): SourceTensor {
  const n = lt.shape[0], start = lt.slice!.start;
  const el = src.dtype === "F32" ? 4 : src.dtype === "F16" ||
      src.dtype === "BF16"
    ? 2
    : 0;
  if (el === 0) {
    throw new UnsupportedError(
      src.file ?? src.name,
      `tensor ${src.name}: a ${src.dtype} bias cannot be sliced`,
    );
  }
  return {
    ...src,
    name: lt.name,
    shape: [n],
    byteLength: n * el,
    readRange: undefined, // the source's would read the fused tensor's bytes
    fileRange: undefined,
    read: async () => {
      const d = await src.read();
      if ("data" in d) {
        throw new FormatError(
          src.file ?? src.name,
          `tensor ${src.name}: unexpected packed data`,
        );
      }
      return {
        dtype: d.dtype,
        bytes: d.bytes.slice(start * el, (start + n) * el),
      };
    },
  };
}
