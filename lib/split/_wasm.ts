/**
 * A minimal WebAssembly encoder for the split's SIMD kernels: LEB128
 * integers, sections, vectors, names, and the opcodes the kernels use, so
 * that the kernels are assembled instruction by instruction in TypeScript
 * (no build step, nothing fetched).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { uleb } from "./_wasm.ts";
 * assert.deepEqual(uleb(624485), [0xe5, 0x8e, 0x26]);
 * ```
 *
 * @module
 */

export const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
};
export const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
};
export const f32c = (x: number): number[] => {
  const b = new Uint8Array(new Float32Array([x]).buffer);
  return [0x43, ...b];
};
export const vec = (items: number[][]): number[] => [
  ...uleb(items.length),
  ...items.flat(),
];
export const section = (id: number, body: number[]): number[] => [
  id,
  ...uleb(body.length),
  ...body,
];
export const str = (s: string): number[] =>
  vec([...s].map((c) => [c.charCodeAt(0)]));

// opcodes
export const get = (i: number) => [0x20, ...uleb(i)];
export const set = (i: number) => [0x21, ...uleb(i)];
export const tee = (i: number) => [0x22, ...uleb(i)];
export const i32 = (n: number) => [0x41, ...sleb(n | 0)];
export const simd = (
  op: number,
  ...imm: number[]
) => [0xfd, ...uleb(op), ...imm];
export const mem = (align: number, offset: number) => [align, ...uleb(offset)];
export const I32_ADD = 0x6a, I32_SHL = 0x74, I32_CTZ = 0x68, I32_GT_U = 0x4b;
export const F32_DIV = 0x95, F32_ADD = 0x92, F32_NE = 0x5c, F32_EQ = 0x5b;
export const F32_ABS = 0x8b, F32_LOAD = 0x2a, F32_STORE = 0x38;
export const F32_REINTERPRET = 0xbe, SELECT = 0x1b, I32_GE_U = 0x4f;
export const BLOCK = 0x02, LOOP = 0x03, BR = 0x0c, BR_IF = 0x0d, END = 0x0b;
export const IF = 0x04, RETURN = 0x0f, VOID = 0x40;
export const V128_LOAD = 0x00, V128_STORE = 0x0b;
export const I32X4_SPLAT = 0x11, F32X4_SPLAT = 0x13, I32X4_EXTRACT = 0x1b;
export const V128_AND = 0x4e, V128_OR = 0x50;
export const I32X4_EQ = 0x37, I32X4_BITMASK = 0xa4, I32X4_MAX_S = 0xb8;
export const I32X4_MIN_S = 0xb6, F32X4_MUL = 0xe6, F32X4_ADD = 0xe4;
export const F32X4_SUB = 0xe5,
  F32X4_ABS = 0xe0,
  F32X4_GE = 0x46,
  F32X4_TRUNC = 0x69;
export const I32X4_TRUNC_SAT_S = 0xf8, I16X8_NARROW_S = 0x85;
export const I32X4_RELAXED_TRUNC_S = 0x101;
export const I8X16_NARROW_U = 0x66, I8X16_NARROW_S = 0x65, I8X16_SHL = 0x6b;
export const I32X4_EXTEND_LOW_U = 0xa9,
  I32X4_EXTEND_HIGH_U = 0xaa,
  I32X4_SHL = 0xab;
export const I32X4_GT_S = 0x3b, V128_BITSELECT = 0x52;
export const I16X8_SPLAT = 0x10, I16X8_EXTRACT_U = 0x19, I16X8_EQ = 0x2d;
export const I16X8_MAX_S = 0x98, I8X16_SHUFFLE = 0x0d;
export const I8X16_BITMASK = 0x64,
  I8X16_MIN_U = 0x77,
  I32X4_EXTEND_LOW_S = 0xa7,
  I32X4_EXTEND_HIGH_S = 0xa8;
export const I32_LT_U = 0x49;
export const I32_SHR_U = 0x76, I32_OR = 0x72, I8X16_SPLAT = 0x0f;
export const F32_MUL = 0x94;

// --- instruction sequences both kernels emit ---

/**
 * Narrows four i32x4 (pushed by `lane(k0)` … `lane(k0 + 3)`) to one
 * v128 of 16 bytes: pairs to i16x8, then to i8x16 with unsigned (q4's
 * nibbles) or signed (q8) saturation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { get, narrowToBytes } from "./_wasm.ts";
 * // local.get k (0x20 k); i16x8.narrow_i32x4_s (0xfd 133); i8x16.narrow_i16x8_u (0xfd 102)
 * assert.deepEqual(narrowToBytes((k) => get(k), 0, true), [
 *   0x20, 0, 0x20, 1, 0xfd, 0x85, 0x01, 0x20, 2, 0x20, 3, 0xfd, 0x85, 0x01, 0xfd, 0x66,
 * ]);
 * ```
 */
export function narrowToBytes(
  lane: (k: number) => number[],
  k0: number,
  unsigned: boolean,
): number[] {
  return [
    ...lane(k0),
    ...lane(k0 + 1),
    ...simd(I16X8_NARROW_S),
    ...lane(k0 + 2),
    ...lane(k0 + 3),
    ...simd(I16X8_NARROW_S),
    ...simd(unsigned ? I8X16_NARROW_U : I8X16_NARROW_S),
  ];
}

/**
 * roundf of the f32x4 in local `y` as lib/quant rounds (t = trunc(y); t +=
 * sign(y) where |y - t| >= 0.5), converted to i32x4 by `trunc`; `t` is a
 * v128 local it may overwrite, `sign` pushes 0x80000000 in each lane.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { get, I32X4_TRUNC_SAT_S, roundfToI32 } from "./_wasm.ts";
 * assert.ok(roundfToI32({ y: 1, t: 2, sign: get(3), trunc: I32X4_TRUNC_SAT_S }).length > 0);
 * ```
 */
export function roundfToI32(
  o: { y: number; t: number; sign: number[]; trunc: number },
): number[] {
  const { y, t } = o;
  return [
    ...get(y),
    ...simd(F32X4_TRUNC),
    ...tee(t),
    // sign(y) as ±1.0, masked by |y - t| >= 0.5
    ...get(y),
    ...o.sign,
    ...simd(V128_AND),
    ...f32c(1),
    ...simd(F32X4_SPLAT),
    ...simd(V128_OR),
    ...get(y),
    ...get(t),
    ...simd(F32X4_SUB),
    ...simd(F32X4_ABS),
    ...f32c(0.5),
    ...simd(F32X4_SPLAT),
    ...simd(F32X4_GE),
    ...simd(V128_AND),
    ...simd(F32X4_ADD),
    ...simd(o.trunc),
  ];
}
