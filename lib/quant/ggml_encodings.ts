/**
 * The GGUF block types as weight encodings (records of lib/quant/encoding.ts):
 * Q4_1, Q5_0, Q5_1, IQ4_NL and the K-quants Q2_K..Q6_K are kept exactly as
 * in the file (their scales inline in each block) through split, shard and
 * GPU buffer, and decoded in registers by the kernels `matvec_ggml` /
 * `matmul_ggml` with the type's `kernels/_ggml_<type>.wgsl` snippet. The CPU
 * codec is lib/quant/ggml_blocks.ts (decode, bit-exact with ggml) and
 * lib/quant/ggml_encode.ts (encode, for `split --quantize q4k` etc.). A row
 * whose length is not a whole number of blocks is zero-padded to whole
 * blocks (as q8/q4 are); GGUF files never need it, and the kernels then use
 * `matmul_generic` with the snippet's `weight_at`.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import {
  dequantizeGgml,
  GGML_BLOCKS,
  type GgmlBlockType,
} from "./ggml_blocks.ts";
import { quantizeGgml } from "./ggml_encode.ts";
import common from "../../kernels/_ggml_common.wgsl" with { type: "text" };
import q4_1 from "../../kernels/_ggml_q4_1.wgsl" with { type: "text" };
import q5_0 from "../../kernels/_ggml_q5_0.wgsl" with { type: "text" };
import q5_1 from "../../kernels/_ggml_q5_1.wgsl" with { type: "text" };
import iq4nl from "../../kernels/_ggml_iq4_nl.wgsl" with { type: "text" };
import q2k from "../../kernels/_ggml_q2_k.wgsl" with { type: "text" };
import q3k from "../../kernels/_ggml_q3_k.wgsl" with { type: "text" };
import kqHeader from "../../kernels/_ggml_kq_header.wgsl" with {
  type: "text",
};
import q4k from "../../kernels/_ggml_q4_k.wgsl" with { type: "text" };
import q5k from "../../kernels/_ggml_q5_k.wgsl" with { type: "text" };
import q6k from "../../kernels/_ggml_q6_k.wgsl" with { type: "text" };

/**
 * Encoding names of the GGUF block types, by GGUF type.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GGML_ENCODING_NAMES } from "./ggml_encodings.ts";
 * assert.equal(GGML_ENCODING_NAMES.Q4_K, "q4k");
 * ```
 */
export const GGML_ENCODING_NAMES: {
  readonly Q4_1: "q4_1";
  readonly Q5_0: "q5_0";
  readonly Q5_1: "q5_1";
  readonly IQ4_NL: "iq4_nl";
  readonly Q2_K: "q2k";
  readonly Q3_K: "q3k";
  readonly Q4_K: "q4k";
  readonly Q5_K: "q5k";
  readonly Q6_K: "q6k";
} = Object.freeze(
  {
    Q4_1: "q4_1",
    Q5_0: "q5_0",
    Q5_1: "q5_1",
    IQ4_NL: "iq4_nl",
    Q2_K: "q2k",
    Q3_K: "q3k",
    Q4_K: "q4k",
    Q5_K: "q5k",
    Q6_K: "q6k",
  } as const,
);

/**
 * The name of a GGUF block encoding (`q4k`, `q6k`, `q4_1`, ...).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { GgmlEncodingName } from "./ggml_encodings.ts";
 * const n: GgmlEncodingName = "q5k";
 * assert.equal(n, "q5k");
 * ```
 */
export type GgmlEncodingName =
  typeof GGML_ENCODING_NAMES[keyof typeof GGML_ENCODING_NAMES];

const SNIPPETS: Record<keyof typeof GGML_ENCODING_NAMES, string> = {
  Q4_1: q4_1,
  Q5_0: q5_0,
  Q5_1: q5_1,
  IQ4_NL: iq4nl,
  Q2_K: q2k,
  Q3_K: q3k,
  Q4_K: kqHeader + q4k,
  Q5_K: kqHeader + q5k,
  Q6_K: q6k,
};

/** Element c of row r, for matmul_generic (rows padded to whole blocks, p.nb blocks each). */
const WEIGHT_AT = `fn weight_at(r: u32, c: u32) -> f32 {
  let o = (r * params.nb + c / QK) * QB;
  let v = dq8(blk(o), o, (c % QK) / 8u);
  let j = c % 8u;
  return select(v[0][j & 3u], v[1][j & 3u], j >= 4u);
}
`;

/** The fields of an encoding record for a GGUF block type (see lib/quant/encoding.ts). */
export interface GgmlRecordFields {
  name: GgmlEncodingName;
  description: string;
  blockElems: number;
  blockBytes: number;
  gguf: {
    type: GgmlBlockType;
    repack(
      bytes: Uint8Array,
      rows: number,
      cols: number,
    ): { data: Uint8Array };
  };
  rowBytes(cols: number): [number, number];
  encode(w: Float32Array, rows: number, cols: number): { data: Uint8Array };
  decode(p: { data: Uint8Array }, rows: number, cols: number): Float32Array;
  wgsl: string;
  gpu: {
    align: number;
    matvec: { body: string; rows: number; wg: number };
    matmul: { body: string; tile: number; wg: number };
  };
}

function checkRows(what: string, rows: number, cols: number): void {
  if (
    !Number.isSafeInteger(rows) || rows <= 0 || !Number.isSafeInteger(cols) ||
    cols <= 0
  ) {
    throw new UsageError(
      `${what}: needs positive integer rows and cols, got ${rows} x ${cols}`,
    );
  }
}

/**
 * The record fields of GGUF type `type` (lib/quant/encoding.ts adds the
 * common ones: inline scales, U8 storage, packed).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ggmlRecord } from "./ggml_encodings.ts";
 * const r = ggmlRecord("Q4_K");
 * assert.equal(r.name, "q4k");
 * assert.deepEqual(r.rowBytes(300), [2 * 144, 0]); // padded to 2 blocks
 * const x = Float32Array.from({ length: 512 }, (_, i) => Math.cos(i));
 * const back = r.decode(r.encode(x, 2, 256), 2, 256);
 * assert.ok(back.every((v, i) => Math.abs(v - x[i]) < 0.08));
 * ```
 */
export function ggmlRecord(
  type: keyof typeof GGML_ENCODING_NAMES,
): GgmlRecordFields {
  const { elems, bytes } = GGML_BLOCKS[type];
  const name = GGML_ENCODING_NAMES[type];
  const nbOf = (cols: number) => Math.ceil(cols / elems);
  const snippet = common + SNIPPETS[type];
  return {
    name,
    description:
      `GGUF ${type} blocks as in the file (${elems} values in ${bytes} bytes, ${
        (bytes * 8 / elems).toFixed(4).replace(/0+$/, "").replace(/\.$/, "")
      } bits per weight)`,
    blockElems: elems,
    blockBytes: bytes,
    gguf: {
      type,
      repack: (b, rows, cols) => {
        checkRows(type, rows, cols);
        if (b.length !== rows * nbOf(cols) * bytes) {
          throw new UsageError(
            `${type}: [${rows}, ${cols}] needs ${
              rows * nbOf(cols) * bytes
            } bytes, got ${b.length}`,
          );
        }
        return { data: b };
      },
    },
    rowBytes: (cols) => [nbOf(cols) * bytes, 0],
    encode: (w, rows, cols) => {
      checkRows(type, rows, cols);
      if (w.length !== rows * cols) {
        throw new UsageError(
          `${type}: ${w.length} values do not form a ${rows} x ${cols} matrix`,
        );
      }
      const padded = nbOf(cols) * elems;
      if (padded === cols) return { data: quantizeGgml(type, w) };
      const x = new Float32Array(rows * padded);
      for (let r = 0; r < rows; r++) {
        x.set(w.subarray(r * cols, (r + 1) * cols), r * padded);
      }
      return { data: quantizeGgml(type, x) };
    },
    decode: (p, rows, cols) => {
      checkRows(type, rows, cols);
      const padded = nbOf(cols) * elems;
      const all = dequantizeGgml(type, p.data, rows * padded);
      if (padded === cols) return all;
      const out = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++) {
        out.set(all.subarray(r * padded, r * padded + cols), r * cols);
      }
      return out;
    },
    wgsl:
      `// @section block: QK, QB, Blk, blk, dq8 for matvec_ggml / matmul_ggml\n${snippet}` +
      `// @section scalar: element c of row r for matmul_generic\n${snippet}${WEIGHT_AT}`,
    gpu: {
      align: elems,
      matvec: { body: "matvec_ggml", rows: 4, wg: 16 },
      matmul: { body: "matmul_ggml", tile: 4, wg: 16 },
    },
  };
}
