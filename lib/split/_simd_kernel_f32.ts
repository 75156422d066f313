/**
 * The split's SIMD kernels over f32 rows: q8 and q4 packing of f32 values,
 * and widening F16/BF16 into f32 (assembled with _wasm.ts; the module is
 * put together in _simd_module.ts, its semantics in _simd_quant.ts).
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
  F32_NE,
  F32_REINTERPRET,
  F32_STORE,
  f32c,
  F32X4_ADD,
  F32X4_MUL,
  F32X4_SPLAT,
  get,
  i32,
  I32_ADD,
  I32_CTZ,
  I32_GE_U,
  I32_GT_U,
  I32_SHL,
  I32X4_BITMASK,
  I32X4_EQ,
  I32X4_EXTEND_HIGH_U,
  I32X4_EXTEND_LOW_U,
  I32X4_EXTRACT,
  I32X4_GT_S,
  I32X4_MAX_S,
  I32X4_MIN_S,
  I32X4_SHL,
  I32X4_SPLAT,
  I32X4_TRUNC_SAT_S,
  I8X16_SHL,
  IF,
  LOOP,
  mem,
  narrowToBytes,
  RETURN,
  roundfToI32,
  SELECT,
  set,
  simd,
  tee,
  uleb,
  V128_AND,
  V128_BITSELECT,
  V128_LOAD,
  V128_OR,
  V128_STORE,
  vec,
  VOID,
} from "./_wasm.ts";

/**
 * One function `(src, groups, dst, _) -> 0` widening `groups` groups of 8
 * F16 (or BF16) values at byte offset `src` to f32 at `dst`, exactly as
 * lib/quant/half.ts decodes them: BF16 is the top half of an f32; an F16's
 * exponent and mantissa shifted into f32 position times 2^112 is its value
 * (normal and subnormal alike), infinities and NaNs keep an all-ones
 * exponent, and the sign is copied.
 */
export function widenFunction(dtype: "F16" | "BF16"): number[] {
  // params: 0 src, 1 groups, 2 dst, 3 unused; locals: 4 i (i32),
  // 5 v, 6 x, 7 em, 8 a (v128)
  const code: number[] = [];
  const emit = (...xs: (number | number[])[]) => {
    for (const x of xs) {
      if (Array.isArray(x)) code.push(...x);
      else code.push(x);
    }
  };
  const splat = (n: number) => [...i32(n), ...simd(I32X4_SPLAT)];
  /** the i32x4 of u16 bits in local 6 → f32x4 bits on the stack */
  const convert = (): number[] => {
    if (dtype === "BF16") return [...get(6), ...i32(16), ...simd(I32X4_SHL)];
    return [
      // em = x & 0x7fff; a = em << 13
      ...get(6),
      ...splat(0x7fff),
      ...simd(V128_AND),
      ...tee(7),
      ...i32(13),
      ...simd(I32X4_SHL),
      ...set(8),
      // bitselect(a | 0x7f800000, a * 2^112, em > 0x7bff)
      ...get(8),
      ...splat(0x7f800000),
      ...simd(V128_OR),
      ...get(8),
      ...f32c(2 ** 112),
      ...simd(F32X4_SPLAT),
      ...simd(F32X4_MUL),
      ...get(7),
      ...splat(0x7bff),
      ...simd(I32X4_GT_S),
      ...simd(V128_BITSELECT),
      // | sign << 16
      ...get(6),
      ...splat(0x8000),
      ...simd(V128_AND),
      ...i32(16),
      ...simd(I32X4_SHL),
      ...simd(V128_OR),
    ];
  };
  emit(i32(0), set(4));
  emit(BLOCK, VOID, LOOP, VOID);
  emit(get(4), get(1), I32_GE_U, BR_IF, 1);
  emit(
    get(0),
    get(4),
    i32(4),
    I32_SHL,
    I32_ADD,
    simd(V128_LOAD, ...mem(4, 0)),
    set(5),
  );
  for (
    const [ext, off] of [[I32X4_EXTEND_LOW_U, 0], [I32X4_EXTEND_HIGH_U, 16]]
  ) {
    emit(get(2), get(4), i32(5), I32_SHL, I32_ADD); // store address
    emit(get(5), simd(ext), set(6));
    emit(convert(), simd(V128_STORE, ...mem(4, off)));
  }
  emit(get(4), i32(1), I32_ADD, set(4), BR, 0, END, END);
  emit(i32(0), END);
  const locals = vec([
    [...uleb(1), 0x7f], // i32 x1
    [...uleb(4), 0x7b], // v128 x4
  ]);
  const body = [...locals, ...code];
  return [...uleb(body.length), ...body];
}

/**
 * One function `(src, blocks, outData, outD) -> i32` over `blocks` blocks of
 * 32 f32 at byte offset `src`: packed bytes to `outData` (16 or 32 per
 * block), the f32 scale of each block to `outD`; returns 0, or 1 when a
 * block needs lib/quant (a NaN, or 1/d not finite).
 */
export function quantFunction(kind: "q8" | "q4"): number[] {
  // params: 0 src, 1 blocks, 2 outData, 3 outD; locals: 4 b, 5 am, 6 lane,
  // 7 idx, 8 mask (i32), 9 d, 10 id (f32),
  // 11..18 v0..v7 (v128), 19 t (v128), 20 vid (v128)
  const V = (k: number) => 11 + k;
  const code: number[] = [];
  const emit = (...xs: (number | number[])[]) => {
    for (const x of xs) {
      if (Array.isArray(x)) code.push(...x);
      else code.push(x);
    }
  };
  emit(i32(0), set(4));
  emit(BLOCK, VOID, LOOP, VOID);
  // if b >= blocks: break
  emit(get(4), get(1), I32_GE_U, BR_IF, 1);
  // load v0..v7 from src + b*128 + 16k
  for (let k = 0; k < 8; k++) {
    emit(
      get(0),
      get(4),
      i32(7),
      I32_SHL,
      I32_ADD,
      simd(V128_LOAD, ...mem(4, 16 * k)),
      set(V(k)),
    );
  }
  // t = max_s over (v_k & 0x7fffffff)
  const absBits = (k: number) => [
    ...get(V(k)),
    ...i32(0x7fffffff),
    ...simd(I32X4_SPLAT),
    ...simd(V128_AND),
  ];
  emit(absBits(0));
  for (let k = 1; k < 8; k++) emit(absBits(k), simd(I32X4_MAX_S));
  emit(set(19));
  // am = max of the 4 lanes
  emit(get(19), simd(I32X4_EXTRACT, 0), set(5));
  for (let l = 1; l < 4; l++) {
    emit(
      get(19),
      simd(I32X4_EXTRACT, l),
      tee(6),
      get(5),
      get(6),
      get(5),
      I32_GT_U,
      SELECT,
      set(5),
    );
  }
  // a NaN: lib/quant does this chunk
  emit(get(5), i32(0x7f800000), I32_GT_U, IF, VOID, i32(1), RETURN, END);
  if (kind === "q4") {
    // idx = first element whose magnitude bits equal am
    emit(i32(0), set(7), i32(0), set(6));
    emit(BLOCK, VOID, LOOP, VOID);
    // mask = bitmask(eq(v_k & 0x7fffffff, splat am)) for k = 0..7 (unrolled via a br_table-free chain)
    for (let k = 0; k < 8; k++) {
      emit(
        absBits(k),
        get(5),
        simd(I32X4_SPLAT),
        simd(I32X4_EQ),
        simd(I32X4_BITMASK),
        tee(8),
        IF,
        VOID,
        i32(4 * k),
        get(8),
        I32_CTZ,
        I32_ADD,
        set(7),
        BR,
        2, // out of the block
        END,
      );
    }
    emit(BR, 1, END, END); // (loop never repeats)
    // d = max / -8 + 0
    emit(
      get(0),
      get(4),
      i32(7),
      I32_SHL,
      I32_ADD,
      get(7),
      i32(2),
      I32_SHL,
      I32_ADD,
      F32_LOAD,
      ...mem(2, 0),
      f32c(-8),
      F32_DIV,
      f32c(0),
      F32_ADD,
      set(9),
    );
  } else {
    // d = amax / 127
    emit(get(5), F32_REINTERPRET, f32c(127), F32_DIV, set(9));
  }
  // id = d != 0 ? 1/d : 0
  emit(
    f32c(1),
    get(9),
    F32_DIV,
    f32c(0),
    get(9),
    f32c(0),
    F32_NE,
    SELECT,
    set(10),
  );
  // 1/d overflowed: lib/quant does this chunk
  emit(
    get(10),
    F32_ABS,
    f32c(Infinity),
    F32_EQ,
    IF,
    VOID,
    i32(1),
    RETURN,
    END,
  );
  // store d
  emit(
    get(3),
    get(4),
    i32(2),
    I32_SHL,
    I32_ADD,
    get(9),
    F32_STORE,
    ...mem(2, 0),
  );
  emit(get(10), simd(F32X4_SPLAT), set(20));
  const scaled = (k: number) => [
    ...get(V(k)),
    ...get(20),
    ...simd(F32X4_MUL),
  ];
  if (kind === "q4") {
    // q_k = clamp(trunc_sat(x*id + 8.5), 0, 15)
    for (let k = 0; k < 8; k++) {
      emit(
        scaled(k),
        f32c(8.5),
        simd(F32X4_SPLAT),
        simd(F32X4_ADD),
        simd(I32X4_TRUNC_SAT_S),
        i32(15),
        simd(I32X4_SPLAT),
        simd(I32X4_MIN_S),
        i32(0),
        simd(I32X4_SPLAT),
        simd(I32X4_MAX_S),
        set(V(k)),
      );
    }
    // bytes: low nibbles from elements 0..15, high from 16..31
    const lane = (k: number) => get(V(k));
    emit(get(2), get(4), i32(4), I32_SHL, I32_ADD);
    emit(narrowToBytes(lane, 0, true), narrowToBytes(lane, 4, true));
    emit(
      i32(4),
      simd(I8X16_SHL),
      simd(V128_OR),
      simd(V128_STORE, ...mem(4, 0)),
    );
  } else {
    const sign = [...i32(0x80000000 | 0), ...simd(I32X4_SPLAT)];
    for (let k = 0; k < 8; k++) {
      emit(scaled(k), set(19));
      emit(
        roundfToI32({ y: 19, t: V(k), sign, trunc: I32X4_TRUNC_SAT_S }),
        set(V(k)),
      );
    }
    for (const k of [0, 4]) {
      emit(get(2), get(4), i32(5), I32_SHL, I32_ADD);
      emit(narrowToBytes((j) => get(V(j)), k, false));
      emit(simd(V128_STORE, ...mem(4, 4 * k)));
    }
  }
  // b++; continue
  emit(get(4), i32(1), I32_ADD, set(4), BR, 0, END, END);
  emit(i32(0), END);
  const locals = vec([
    [...uleb(5), 0x7f], // i32 x5
    [...uleb(2), 0x7d], // f32 x2
    [...uleb(10), 0x7b], // v128 x10
  ]);
  const body = [...locals, ...code];
  return [...uleb(body.length), ...body];
}
