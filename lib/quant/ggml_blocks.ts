/**
 * CPU decoders for the ggml block-quantized tensor types Strata reads from
 * GGUF files: the legacy 32-element blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
 * IQ4_NL) and the 256-element K-quant super-blocks (Q2_K, Q3_K, Q4_K, Q5_K,
 * Q6_K). Blocks run along a row (ggml's `ne0`), so a row of `cols` elements is
 * `cols / blockElems` consecutive blocks.
 *
 * Each decoder is written from the byte layout in docs/format.md ("GGUF block
 * types") and repeats ggml's f32 arithmetic step by step (`Math.fround` after
 * each product), so its output equals ggml's `to_float` for the same bytes.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { f16Table } from "./half.ts";

/**
 * A ggml block type Strata decodes.
 *
 * @example
 * ```ts
 * import type { GgmlBlockType } from "./ggml_blocks.ts";
 * const t: GgmlBlockType = "Q4_K";
 * console.log(t);
 * ```
 */
export type GgmlBlockType =
  | "Q4_0"
  | "Q4_1"
  | "Q5_0"
  | "Q5_1"
  | "Q8_0"
  | "IQ4_NL"
  | "Q2_K"
  | "Q3_K"
  | "Q4_K"
  | "Q5_K"
  | "Q6_K";

/**
 * Elements and bytes per block of each {@link GgmlBlockType} (the sizes of
 * ggml-common.h's structs).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GGML_BLOCKS } from "./ggml_blocks.ts";
 * assert.deepEqual(GGML_BLOCKS.Q4_K, { elems: 256, bytes: 144 });
 * ```
 */
export const GGML_BLOCKS: Readonly<
  Record<GgmlBlockType, { readonly elems: number; readonly bytes: number }>
> = Object.freeze({
  Q4_0: { elems: 32, bytes: 18 },
  Q4_1: { elems: 32, bytes: 20 },
  Q5_0: { elems: 32, bytes: 22 },
  Q5_1: { elems: 32, bytes: 24 },
  Q8_0: { elems: 32, bytes: 34 },
  IQ4_NL: { elems: 32, bytes: 18 },
  Q2_K: { elems: 256, bytes: 84 },
  Q3_K: { elems: 256, bytes: 110 },
  Q4_K: { elems: 256, bytes: 144 },
  Q5_K: { elems: 256, bytes: 176 },
  Q6_K: { elems: 256, bytes: 210 },
});

/**
 * Whether `name` is a ggml block type Strata decodes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isGgmlBlockType } from "./ggml_blocks.ts";
 * assert.equal(isGgmlBlockType("Q6_K"), true);
 * assert.equal(isGgmlBlockType("IQ2_XS"), false);
 * ```
 */
export function isGgmlBlockType(name: string): name is GgmlBlockType {
  return Object.hasOwn(GGML_BLOCKS, name);
}

/**
 * The 16 values of an IQ4_NL nibble (ggml's `kvalues_iq4nl`), multiplied by
 * the block scale.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IQ4_NL_VALUES } from "./ggml_blocks.ts";
 * assert.equal(IQ4_NL_VALUES.length, 16);
 * assert.equal(IQ4_NL_VALUES[0], -127);
 * ```
 */
export const IQ4_NL_VALUES: readonly number[] = Object.freeze([
  -127,
  -104,
  -83,
  -65,
  -49,
  -35,
  -22,
  -10,
  1,
  13,
  25,
  38,
  53,
  69,
  89,
  113,
]);

const fr = Math.fround;

/**
 * Scale `j` (0..7) and min of a Q4_K/Q5_K super-block from its 12 packed
 * bytes at `s`: 6 bits each. For j < 4 the low 6 bits of bytes j and j+4; for
 * j >= 4 the nibbles of byte j+4 plus the top 2 bits of bytes j-4 and j.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kScaleMin } from "./ggml_blocks.ts";
 * const s = new Uint8Array(12);
 * s[0] = 0xc5; s[4] = 0x07; s[8] = 0x21; // sc0 = 5, m0 = 7; sc4 = 0x31, m4 = 0x02
 * assert.deepEqual(kScaleMin(s, 0, 0), [5, 7]);
 * assert.deepEqual(kScaleMin(s, 0, 4), [0x31, 0x02]);
 * ```
 */
export function kScaleMin(
  b: Uint8Array,
  s: number,
  j: number,
): [number, number] {
  if (j < 4) return [b[s + j] & 63, b[s + j + 4] & 63];
  return [
    (b[s + j + 4] & 0xf) | ((b[s + j - 4] >> 6) << 4),
    (b[s + j + 4] >> 4) | ((b[s + j] >> 6) << 4),
  ];
}

/**
 * The f32 scales and mins `[d1, m1, d2, m2]` of the two 32-element halves of
 * chunk `c` (0..3) of the Q4_K / Q5_K block at `o` (super-block scale `d`,
 * `dmin`): `d * sc` and `dmin * m` of sub-blocks 2c and 2c+1.
 */
function kChunkScales(
  b: Uint8Array,
  o: number,
  c: number,
  d: number,
  dmin: number,
): [number, number, number, number] {
  const [sc1, m1] = kScaleMin(b, o + 4, 2 * c);
  const [sc2, m2] = kScaleMin(b, o + 4, 2 * c + 1);
  return [fr(d * sc1), fr(dmin * m1), fr(d * sc2), fr(dmin * m2)];
}

/**
 * Scale `i` (0..15) of a Q3_K super-block from its 12 packed bytes at `s`, as
 * stored (6 bits, 0..63; the signed scale is this minus 32): low 4 bits from
 * byte i (i < 8, low nibble) or byte i-8 (high nibble), high 2 bits from byte
 * 8 + i%4 at bit 2*floor(i/4).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { q3kScale } from "./ggml_blocks.ts";
 * const s = new Uint8Array(12);
 * // byte 9 holds the high bits of scales 1, 5, 9, 13 (2 bits each, from bit 0)
 * s[1] = 0xa3; s[9] = 0b00_10_00_01;
 * assert.equal(q3kScale(s, 0, 1), 0x13); // 0x3 | 1 << 4
 * assert.equal(q3kScale(s, 0, 9), 0x2a); // 0xa | 2 << 4
 * assert.equal(q3kScale(s, 0, 5), 0x00);
 * ```
 */
export function q3kScale(b: Uint8Array, s: number, i: number): number {
  const low = i < 8 ? b[s + i] & 0xf : b[s + i - 8] >> 4;
  const high = (b[s + 8 + (i & 3)] >> (2 * (i >> 2))) & 3;
  return low | (high << 4);
}

/** Decodes block `blk` (at byte `o`) into out[y..y+elems). */
type BlockDecoder = (
  b: Uint8Array,
  o: number,
  out: Float32Array,
  y: number,
  h: Float32Array,
) => void;

const u32le = (b: Uint8Array, o: number) =>
  (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
const half = (h: Float32Array, b: Uint8Array, o: number) =>
  h[b[o] | (b[o + 1] << 8)];

const DECODERS: Record<GgmlBlockType, BlockDecoder> = {
  // d:f16, qs:u8[16]; x[j] = d*(lo-8), x[j+16] = d*(hi-8)
  Q4_0(b, o, out, y, h) {
    const d = half(h, b, o);
    for (let j = 0; j < 16; j++) {
      const v = b[o + 2 + j];
      out[y + j] = d * ((v & 0xf) - 8);
      out[y + j + 16] = d * ((v >> 4) - 8);
    }
  },
  // d:f16, m:f16, qs:u8[16]; x = q*d + m
  Q4_1(b, o, out, y, h) {
    const d = half(h, b, o), m = half(h, b, o + 2);
    for (let j = 0; j < 16; j++) {
      const v = b[o + 4 + j];
      out[y + j] = fr((v & 0xf) * d) + m;
      out[y + j + 16] = fr((v >> 4) * d) + m;
    }
  },
  // d:f16, qh:u32, qs:u8[16]; 5th bit of element j is qh bit j; x = d*(q-16)
  Q5_0(b, o, out, y, h) {
    const d = half(h, b, o), qh = u32le(b, o + 2);
    for (let j = 0; j < 16; j++) {
      const v = b[o + 6 + j];
      const q0 = (v & 0xf) | (((qh >>> j) & 1) << 4);
      const q1 = (v >> 4) | (((qh >>> (j + 16)) & 1) << 4);
      out[y + j] = (q0 - 16) * d;
      out[y + j + 16] = (q1 - 16) * d;
    }
  },
  // d:f16, m:f16, qh:u32, qs:u8[16]; x = q*d + m
  Q5_1(b, o, out, y, h) {
    const d = half(h, b, o), m = half(h, b, o + 2), qh = u32le(b, o + 4);
    for (let j = 0; j < 16; j++) {
      const v = b[o + 8 + j];
      const q0 = (v & 0xf) | (((qh >>> j) & 1) << 4);
      const q1 = (v >> 4) | (((qh >>> (j + 16)) & 1) << 4);
      out[y + j] = fr(q0 * d) + m;
      out[y + j + 16] = fr(q1 * d) + m;
    }
  },
  // d:f16, qs:i8[32]; x = q*d
  Q8_0(b, o, out, y, h) {
    const d = half(h, b, o);
    for (let j = 0; j < 32; j++) out[y + j] = ((b[o + 2 + j] << 24) >> 24) * d;
  },
  // d:f16, qs:u8[16]; x[j] = d*K[lo], x[j+16] = d*K[hi]
  IQ4_NL(b, o, out, y, h) {
    const d = half(h, b, o);
    for (let j = 0; j < 16; j++) {
      const v = b[o + 2 + j];
      out[y + j] = d * IQ4_NL_VALUES[v & 0xf];
      out[y + j + 16] = d * IQ4_NL_VALUES[v >> 4];
    }
  },
  // scales:u8[16] (lo = scale, hi = min), qs:u8[64] (2 bits), d:f16, dmin:f16
  Q2_K(b, o, out, y, h) {
    const d = half(h, b, o + 80), dmin = half(h, b, o + 82);
    let is = 0;
    for (let n = 0; n < 2; n++) {
      const q = o + 16 + n * 32;
      for (let j = 0; j < 4; j++) {
        const shift = 2 * j;
        for (let g = 0; g < 2; g++) {
          const sc = b[o + is++];
          const dl = fr(d * (sc & 0xf)), ml = fr(dmin * (sc >> 4));
          for (let l = 16 * g; l < 16 * g + 16; l++) {
            out[y + n * 128 + j * 32 + l] = fr(dl * ((b[q + l] >> shift) & 3)) -
              ml;
          }
        }
      }
    }
  },
  // hmask:u8[32], qs:u8[64] (2 low bits), scales:u8[12] (16 x 6 bits), d:f16
  Q3_K(b, o, out, y, h) {
    const d = half(h, b, o + 108);
    let is = 0;
    for (let n = 0; n < 2; n++) {
      const q = o + 32 + n * 32;
      for (let j = 0; j < 4; j++) {
        const shift = 2 * j, m = 1 << (n * 4 + j);
        for (let g = 0; g < 2; g++) {
          const dl = fr(d * (q3kScale(b, o + 96, is++) - 32));
          for (let l = 16 * g; l < 16 * g + 16; l++) {
            const v = ((b[q + l] >> shift) & 3) - (b[o + l] & m ? 0 : 4);
            out[y + n * 128 + j * 32 + l] = dl * v;
          }
        }
      }
    }
  },
  // d:f16, dmin:f16, scales:u8[12] (8 x 6-bit scale + min), qs:u8[128] (4 bits)
  Q4_K(b, o, out, y, h) {
    const d = half(h, b, o), dmin = half(h, b, o + 2);
    for (let c = 0; c < 4; c++) {
      const [d1, mm1, d2, mm2] = kChunkScales(b, o, c, d, dmin);
      const q = o + 16 + c * 32, yy = y + c * 64;
      for (let l = 0; l < 32; l++) {
        out[yy + l] = fr(d1 * (b[q + l] & 0xf)) - mm1;
        out[yy + 32 + l] = fr(d2 * (b[q + l] >> 4)) - mm2;
      }
    }
  },
  // d:f16, dmin:f16, scales:u8[12], qh:u8[32] (5th bits), qs:u8[128]
  Q5_K(b, o, out, y, h) {
    const d = half(h, b, o), dmin = half(h, b, o + 2);
    for (let c = 0; c < 4; c++) {
      const [d1, mm1, d2, mm2] = kChunkScales(b, o, c, d, dmin);
      const u1 = 1 << (2 * c), u2 = 2 << (2 * c);
      const q = o + 48 + c * 32, yy = y + c * 64;
      for (let l = 0; l < 32; l++) {
        const hb = b[o + 16 + l];
        out[yy + l] = fr(d1 * ((b[q + l] & 0xf) + (hb & u1 ? 16 : 0))) - mm1;
        out[yy + 32 + l] = fr(d2 * ((b[q + l] >> 4) + (hb & u2 ? 16 : 0))) -
          mm2;
      }
    }
  },
  // ql:u8[128] (low 4 bits), qh:u8[64] (high 2 bits), scales:i8[16], d:f16
  Q6_K(b, o, out, y, h) {
    const d = half(h, b, o + 208);
    for (let n = 0; n < 2; n++) {
      const ql = o + n * 64, qh = o + 128 + n * 32, sc = o + 192 + n * 8;
      const yy = y + n * 128;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4, hb = b[qh + l];
        const q1 = ((b[ql + l] & 0xf) | ((hb & 3) << 4)) - 32;
        const q2 = ((b[ql + l + 32] & 0xf) | (((hb >> 2) & 3) << 4)) - 32;
        const q3 = ((b[ql + l] >> 4) | (((hb >> 4) & 3) << 4)) - 32;
        const q4 = ((b[ql + l + 32] >> 4) | (((hb >> 6) & 3) << 4)) - 32;
        const s = (k: number) => fr(d * ((b[sc + is + k] << 24) >> 24));
        out[yy + l] = s(0) * q1;
        out[yy + l + 32] = s(2) * q2;
        out[yy + l + 64] = s(4) * q3;
        out[yy + l + 96] = s(6) * q4;
      }
    }
  },
};

/**
 * Decodes `count` elements of ggml `type` blocks from `bytes` (starting at
 * block 0) into f32, as ggml's `to_float` does.
 *
 * @throws {UsageError} when `count` is not a whole number of blocks or
 * `bytes` is too short.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dequantizeGgml } from "./ggml_blocks.ts";
 * const q8 = new Uint8Array(34); q8[1] = 0x3c; q8[2] = 3; q8[3] = 0xff; // d = 1, q = [3, -1, 0...]
 * assert.deepEqual([...dequantizeGgml("Q8_0", q8, 32).subarray(0, 3)], [3, -1, 0]);
 * ```
 */
export function dequantizeGgml(
  type: GgmlBlockType,
  bytes: Uint8Array,
  count: number,
): Float32Array {
  const { elems, bytes: bb } = GGML_BLOCKS[type];
  if (!Number.isSafeInteger(count) || count < 0 || count % elems !== 0) {
    throw new UsageError(
      `${type}: ${count} elements are not a whole number of ${elems}-element blocks`,
    );
  }
  const nb = count / elems;
  if (bytes.length < nb * bb) {
    throw new UsageError(
      `${type}: ${count} elements need ${nb * bb} bytes, got ${bytes.length}`,
    );
  }
  const out = new Float32Array(count);
  const dec = DECODERS[type];
  const h = f16Table();
  for (let i = 0; i < nb; i++) dec(bytes, i * bb, out, i * elems, h);
  return out;
}

/**
 * Decodes row `row` of a `[rows, cols]` ggml tensor (the embedding lookup):
 * only that row's blocks are read.
 *
 * @throws {UsageError} when `cols` is not a whole number of blocks or the row
 * is outside `bytes`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dequantizeGgmlRow } from "./ggml_blocks.ts";
 * const q8 = new Uint8Array(68); q8[35] = 0x40; q8[36] = 5; // row 1: d = 2, q[0] = 5
 * assert.equal(dequantizeGgmlRow("Q8_0", q8, 1, 32)[0], 10);
 * ```
 */
export function dequantizeGgmlRow(
  type: GgmlBlockType,
  bytes: Uint8Array,
  row: number,
  cols: number,
): Float32Array {
  const { elems, bytes: bb } = GGML_BLOCKS[type];
  const rowBytes = (cols / elems) * bb;
  const start = row * rowBytes;
  if (!Number.isSafeInteger(rowBytes) || start + rowBytes > bytes.length) {
    throw new UsageError(
      `${type}: row ${row} of ${cols} columns is outside the ${bytes.length} bytes given`,
    );
  }
  return dequantizeGgml(
    type,
    bytes.subarray(start, start + rowBytes),
    cols,
  );
}
