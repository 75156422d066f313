/**
 * The split's one-pass SIMD kernels: q8 and q4 packing straight from F16 or
 * BF16 rows, each block widened in registers (assembled with _wasm.ts; the
 * module is put together in _simd_module.ts, its semantics in
 * _simd_quant.ts).
 *
 * @module
 */
import {
  BLOCK,
  BR,
  BR_IF,
  END,
  F32_ABS,
  F32_ADD,
  F32_DIV,
  F32_EQ,
  F32_LOAD,
  F32_MUL,
  F32_NE,
  F32_REINTERPRET,
  F32_STORE,
  f32c,
  F32X4_ADD,
  F32X4_MUL,
  F32X4_SPLAT,
  get,
  I16X8_EQ,
  I16X8_EXTRACT_U,
  I16X8_MAX_S,
  I16X8_SPLAT,
  i32,
  I32_ADD,
  I32_CTZ,
  I32_GE_U,
  I32_GT_U,
  I32_LT_U,
  I32_OR,
  I32_SHL,
  I32_SHR_U,
  I32X4_EXTEND_HIGH_S,
  I32X4_EXTEND_LOW_S,
  I32X4_RELAXED_TRUNC_S,
  I32X4_SHL,
  I32X4_SPLAT,
  I32X4_TRUNC_SAT_S,
  I8X16_BITMASK,
  I8X16_MIN_U,
  I8X16_NARROW_S,
  I8X16_SHL,
  I8X16_SHUFFLE,
  I8X16_SPLAT,
  IF,
  LOOP,
  mem,
  narrowToBytes,
  RETURN,
  roundfToI32,
  SELECT,
  set,
  simd,
  uleb,
  V128_AND,
  V128_LOAD,
  V128_OR,
  V128_STORE,
  vec,
  VOID,
} from "./_wasm.ts";

/**
 * One function `(src, blocks, outData, outD) -> i32` packing `blocks` blocks
 * of 32 F16 (or BF16) values read straight from byte offset `src`: no f32
 * copy in memory, each block widened in registers. The largest magnitude
 * is found on the 16-bit patterns (monotonic in |x| like the f32 bits), the
 * first element holding it and its sign by two 32-bit lane masks (from
 * lanes narrowed to bytes) and a count of trailing zeros (no branch per
 * element); q4 clamps to 15 after
 * narrowing to bytes (x * (1/d) + 8.5 is never below 0.49, so the lower
 * clamp of {@link quantFunction} is dropped). Same arithmetic on the same
 * f32 values as {@link widenFunction} then {@link quantFunction}, so the
 * same bytes; returns 1 (lib/quant does the chunk) for an infinity or NaN
 * in a block, or 1/d not finite.
 */
export function quantWideFunction(
  o: { kind: "q8" | "q4"; dtype: "F16" | "BF16"; relaxed: boolean },
): number[] {
  const { kind, dtype } = o;
  // every value truncated here is finite and within ±128 (a block with an
  // infinity or NaN returns first), where the relaxed truncation (one
  // cvttps2dq on x86 against seven instructions) gives the same integers
  const trunc = o.relaxed ? I32X4_RELAXED_TRUNC_S : I32X4_TRUNC_SAT_S;
  // params: 0 src, 1 blocks, 2 outData, 3 outD; i32 locals: 4 b, 5 am,
  // 6 eqm, 7 sgn, 8 at; f32 locals: 9 mag, 10 d, 11 id; v128 locals:
  // 12..15 h0..h3 (8 halves each), 16 t, 17 vid, 18 m16 (0x7fff x8),
  // 19 m32 (0x8fffe000 x4), 20 sign32, 21 p112 (2^112 x4), 22 c8p5, 23 c15
  const H = (j: number) => 12 + j;
  const [T, VID, M16, M32, SIGN, P112, C8P5, C15] = [
    16,
    17,
    18,
    19,
    20,
    21,
    22,
    23,
  ];
  const code: number[] = [];
  const emit = (...xs: (number | number[])[]) => {
    for (const x of xs) {
      if (Array.isArray(x)) code.push(...x);
      else code.push(x);
    }
  };
  const splat32 = (n: number) => [...i32(n), ...simd(I32X4_SPLAT)];
  emit(i32(0x7fff), simd(I16X8_SPLAT), set(M16));
  emit(splat32(0x8fffe000 | 0), set(M32));
  emit(splat32(0x80000000 | 0), set(SIGN));
  emit(f32c(2 ** 112), simd(F32X4_SPLAT), set(P112));
  emit(f32c(8.5), simd(F32X4_SPLAT), set(C8P5));
  emit(i32(15), simd(I8X16_SPLAT), set(C15));
  // blocks go in groups of GROUP: first each block's d and 1/d (a pass of
  // independent blocks, which the core overlaps, where one block's long
  // chain max -> d -> 1/d -> q would stall it), 1/d parked in the block's
  // packed slot; then each block is packed from its 1/d and overwrites it
  const G = 24, GEND = 25, TRUNC = 26, GROUP = 16;
  const blockOut = kind === "q8" ? 5 : 4; // log2 of packed bytes a block
  emit(i32(0), set(G));
  emit(BLOCK, VOID, LOOP, VOID);
  emit(get(G), get(1), I32_GE_U, BR_IF, 1);
  emit(get(G), i32(GROUP), I32_ADD, get(1));
  emit(get(G), i32(GROUP), I32_ADD, get(1), I32_LT_U, SELECT, set(GEND));
  /** h_j = 8 halves at src + b*64 + 16j */
  const loadBlock = () => {
    emit(get(0), get(4), i32(6), I32_SHL, I32_ADD, set(8));
    for (let j = 0; j < 4; j++) {
      emit(get(8), simd(V128_LOAD, ...mem(4, 16 * j)), set(H(j)));
    }
  };
  /** loop b over the group, `body` per block */
  const eachBlock = (body: () => void) => {
    emit(get(G), set(4), BLOCK, VOID, LOOP, VOID);
    emit(get(4), get(GEND), I32_GE_U, BR_IF, 1);
    body();
    emit(get(4), i32(1), I32_ADD, set(4), BR, 0, END, END);
  };
  eachBlock(() => {
    loadBlock();
    const mag16 = (j: number) => [...get(H(j)), ...get(M16), ...simd(V128_AND)];
    // am = the largest 16-bit magnitude of the block
    emit(mag16(0));
    for (let j = 1; j < 4; j++) emit(mag16(j), simd(I16X8_MAX_S));
    emit(set(T));
    for (
      const lanes of [
        [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7],
        [4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11],
        [2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13],
      ]
    ) {
      emit(get(T), get(T), simd(I8X16_SHUFFLE, ...lanes), get(T));
      emit(simd(I16X8_MAX_S), set(T));
    }
    emit(get(T), simd(I16X8_EXTRACT_U, 0), set(5));
    // an infinity or a NaN: lib/quant does this chunk
    emit(
      get(5),
      i32(dtype === "F16" ? 0x7bff : 0x7f7f),
      I32_GT_U,
      IF,
      VOID,
      i32(1),
      RETURN,
      END,
    );
    // eqm: bit i set where element i has magnitude am; sgn: the sign bits.
    // Pairs of 16-bit lanes narrow to bytes with their signs kept (0/-1 from
    // a comparison, any half's sign), so two byte masks cover the 32 lanes
    emit(get(5), simd(I16X8_SPLAT), set(T));
    for (const [local, withEq] of [[6, true], [7, false]] as const) {
      const lanes = (j: number) =>
        withEq ? [...mag16(j), ...get(T), ...simd(I16X8_EQ)] : get(H(j));
      for (const j of [0, 2]) {
        emit(lanes(j), lanes(j + 1), simd(I8X16_NARROW_S), simd(I8X16_BITMASK));
        if (j > 0) emit(i32(16), I32_SHL, I32_OR);
      }
      emit(set(local));
    }
    // mag = the largest as f32: for q4 the first largest with its sign, put
    // in the bits (an f32 select compiles to a branch, mispredicted on
    // half of real blocks: twice the time a value measured here)
    const shift = dtype === "F16" ? 13 : 16;
    emit(get(5), i32(shift), I32_SHL);
    if (kind === "q4") {
      emit(get(7), get(6), I32_CTZ, I32_SHR_U, i32(31), I32_SHL, I32_OR);
    }
    emit(F32_REINTERPRET);
    if (dtype === "F16") emit(f32c(2 ** 112), F32_MUL);
    emit(set(9));
    // d = max / -8 + 0 (q4: x * -0.125 rounds the same exact quotient), or
    // max / 127
    if (kind === "q4") {
      emit(get(9), f32c(-0.125), F32_MUL, f32c(0), F32_ADD, set(10));
    } else emit(get(9), f32c(127), F32_DIV, set(10));
    // id = d != 0 ? 1/d : 0; 1/d overflowed: lib/quant does this chunk
    emit(
      f32c(1),
      get(10),
      F32_DIV,
      f32c(0),
      get(10),
      f32c(0),
      F32_NE,
      SELECT,
      set(11),
    );
    emit(
      get(11),
      F32_ABS,
      f32c(Infinity),
      F32_EQ,
      IF,
      VOID,
      i32(1),
      RETURN,
      END,
    );
    emit(get(3), get(4), i32(2), I32_SHL, I32_ADD, get(10), F32_STORE);
    emit(mem(2, 0));
    emit(get(2), get(4), i32(blockOut), I32_SHL, I32_ADD, get(11), F32_STORE);
    emit(mem(2, 0));
  });
  /** elements 8j + 4h .. + 3 as f32x4 on the stack (as widenFunction) */
  const widen = (j: number, h: number): number[] => {
    const ext = [
      ...get(H(j)),
      ...simd(h === 0 ? I32X4_EXTEND_LOW_S : I32X4_EXTEND_HIGH_S),
    ];
    if (dtype === "BF16") return [...ext, ...i32(16), ...simd(I32X4_SHL)];
    // sign-extended, shifted by 13: bit 31 is the sign and bits 27..13 the
    // exponent and mantissa; the 3 copies of the sign between are masked
    return [
      ...ext,
      ...i32(13),
      ...simd(I32X4_SHL),
      ...get(M32),
      ...simd(V128_AND),
      ...get(P112),
      ...simd(F32X4_MUL),
    ];
  };
  eachBlock(() => {
    loadBlock();
    emit(get(2), get(4), i32(blockOut), I32_SHL, I32_ADD, F32_LOAD, mem(2, 0));
    emit(simd(F32X4_SPLAT), set(VID));
    const vectors: [number, number][] = [];
    for (let j = 0; j < 4; j++) vectors.push([j, 0], [j, 1]);
    if (kind === "q4") {
      // trunc_sat(x * id + 8.5), narrowed to bytes, then min 15
      const q = (k: number) => [
        ...widen(...vectors[k]),
        ...get(VID),
        ...simd(F32X4_MUL),
        ...get(C8P5),
        ...simd(F32X4_ADD),
        ...simd(trunc),
      ];
      const bytes16 = (k: number) => [
        ...narrowToBytes(q, k, true),
        ...get(C15),
        ...simd(I8X16_MIN_U),
      ];
      emit(get(2), get(4), i32(4), I32_SHL, I32_ADD);
      emit(bytes16(0), bytes16(4), i32(4), simd(I8X16_SHL), simd(V128_OR));
      emit(simd(V128_STORE, ...mem(4, 0)));
    } else {
      // roundf as quantFunction: t = trunc(y); t += sign(y) where |y - t| >= 0.5
      const q = (k: number) => [
        ...widen(...vectors[k]),
        ...get(VID),
        ...simd(F32X4_MUL),
        ...set(T),
        ...roundfToI32({ y: T, t: TRUNC, sign: get(SIGN), trunc }),
      ];
      for (const k of [0, 4]) {
        emit(get(2), get(4), i32(5), I32_SHL, I32_ADD);
        emit(narrowToBytes(q, k, false));
        emit(simd(V128_STORE, ...mem(4, 4 * k)));
      }
    }
  });
  emit(get(GEND), set(G), BR, 0, END, END);
  emit(i32(0), END);
  const locals = vec([
    [...uleb(5), 0x7f], // i32 x5
    [...uleb(3), 0x7d], // f32 x3
    [...uleb(12), 0x7b], // v128 x12
    [...uleb(2), 0x7f], // i32 x2: 24 g, 25 gend
    [...uleb(1), 0x7b], // v128 x1: 26 trunc(y) of q8's rounding
  ]);
  const body = [...locals, ...code];
  return [...uleb(body.length), ...body];
}
