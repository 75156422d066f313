/**
 * The WebAssembly SIMD module of the split's q8/q4 packing, assembled here
 * instruction by instruction (no build step, nothing fetched): the kernels'
 * semantics are described in _simd_quant.ts, which instantiates it.
 * Exports: `q8`, `q4` (f32 rows), `f16`, `bf16` (widening), `q8f16`,
 * `q4f16`, `q8bf16`, `q4bf16` (one pass from 16-bit floats).
 *
 * @module
 */

// --- a minimal WebAssembly encoder ---
const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
};
const sleb = (n: number): number[] => {
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
const f32c = (x: number): number[] => {
  const b = new Uint8Array(new Float32Array([x]).buffer);
  return [0x43, ...b];
};
const vec = (items: number[][]): number[] => [
  ...uleb(items.length),
  ...items.flat(),
];
const section = (id: number, body: number[]): number[] => [
  id,
  ...uleb(body.length),
  ...body,
];
const str = (s: string): number[] => vec([...s].map((c) => [c.charCodeAt(0)]));

// opcodes
const get = (i: number) => [0x20, ...uleb(i)];
const set = (i: number) => [0x21, ...uleb(i)];
const tee = (i: number) => [0x22, ...uleb(i)];
const i32 = (n: number) => [0x41, ...sleb(n | 0)];
const simd = (op: number, ...imm: number[]) => [0xfd, ...uleb(op), ...imm];
const mem = (align: number, offset: number) => [align, ...uleb(offset)];
const I32_ADD = 0x6a, I32_SHL = 0x74, I32_CTZ = 0x68, I32_GT_U = 0x4b;
const F32_DIV = 0x95, F32_ADD = 0x92, F32_NE = 0x5c, F32_EQ = 0x5b;
const F32_ABS = 0x8b, F32_LOAD = 0x2a, F32_STORE = 0x38;
const F32_REINTERPRET = 0xbe, SELECT = 0x1b, I32_GE_U = 0x4f;
const BLOCK = 0x02, LOOP = 0x03, BR = 0x0c, BR_IF = 0x0d, END = 0x0b;
const IF = 0x04, RETURN = 0x0f, VOID = 0x40;
const V128_LOAD = 0x00, V128_STORE = 0x0b;
const I32X4_SPLAT = 0x11, F32X4_SPLAT = 0x13, I32X4_EXTRACT = 0x1b;
const V128_AND = 0x4e, V128_OR = 0x50;
const I32X4_EQ = 0x37, I32X4_BITMASK = 0xa4, I32X4_MAX_S = 0xb8;
const I32X4_MIN_S = 0xb6, F32X4_MUL = 0xe6, F32X4_ADD = 0xe4;
const F32X4_SUB = 0xe5, F32X4_ABS = 0xe0, F32X4_GE = 0x46, F32X4_TRUNC = 0x69;
const I32X4_TRUNC_SAT_S = 0xf8, I16X8_NARROW_S = 0x85;
const I32X4_RELAXED_TRUNC_S = 0x101;
const I8X16_NARROW_U = 0x66, I8X16_NARROW_S = 0x65, I8X16_SHL = 0x6b;
const I32X4_EXTEND_LOW_U = 0xa9, I32X4_EXTEND_HIGH_U = 0xaa, I32X4_SHL = 0xab;
const I32X4_GT_S = 0x3b, V128_BITSELECT = 0x52;
const I16X8_SPLAT = 0x10, I16X8_EXTRACT_U = 0x19, I16X8_EQ = 0x2d;
const I16X8_MAX_S = 0x98, I8X16_SHUFFLE = 0x0d;
const I8X16_BITMASK = 0x64,
  I8X16_MIN_U = 0x77,
  I32X4_EXTEND_LOW_S = 0xa7,
  I32X4_EXTEND_HIGH_S = 0xa8;
const I32_LT_U = 0x49;
const I32_SHR_U = 0x76, I32_OR = 0x72, I8X16_SPLAT = 0x0f;
const F32_MUL = 0x94;

/**
 * One function `(src, groups, dst, _) -> 0` widening `groups` groups of 8
 * F16 (or BF16) values at byte offset `src` to f32 at `dst`, exactly as
 * lib/quant/half.ts decodes them: BF16 is the top half of an f32; an F16's
 * exponent and mantissa shifted into f32 position times 2^112 is its value
 * (normal and subnormal alike), infinities and NaNs keep an all-ones
 * exponent, and the sign is copied.
 */
function widenFunction(dtype: "F16" | "BF16"): number[] {
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
function quantFunction(kind: "q8" | "q4"): number[] {
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
    emit(get(2), get(4), i32(4), I32_SHL, I32_ADD);
    emit(
      get(V(0)),
      get(V(1)),
      simd(I16X8_NARROW_S),
      get(V(2)),
      get(V(3)),
      simd(I16X8_NARROW_S),
      simd(I8X16_NARROW_U),
    );
    emit(
      get(V(4)),
      get(V(5)),
      simd(I16X8_NARROW_S),
      get(V(6)),
      get(V(7)),
      simd(I16X8_NARROW_S),
      simd(I8X16_NARROW_U),
      i32(4),
      simd(I8X16_SHL),
      simd(V128_OR),
      simd(V128_STORE, ...mem(4, 0)),
    );
  } else {
    // roundf: t = trunc(x); t += sign(x) where |x - t| >= 0.5
    for (let k = 0; k < 8; k++) {
      emit(scaled(k), set(19));
      emit(
        get(19),
        simd(F32X4_TRUNC),
        tee(V(k)),
        // sign(x) as ±1.0 masked by |x - t| >= 0.5
        get(19),
        i32(0x80000000 | 0),
        simd(I32X4_SPLAT),
        simd(V128_AND),
        f32c(1),
        simd(F32X4_SPLAT),
        simd(V128_OR),
        get(19),
        get(V(k)),
        simd(F32X4_SUB),
        simd(F32X4_ABS),
        f32c(0.5),
        simd(F32X4_SPLAT),
        simd(F32X4_GE),
        simd(V128_AND),
        simd(F32X4_ADD),
        simd(I32X4_TRUNC_SAT_S),
        set(V(k)),
      );
    }
    emit(get(2), get(4), i32(5), I32_SHL, I32_ADD);
    emit(
      get(V(0)),
      get(V(1)),
      simd(I16X8_NARROW_S),
      get(V(2)),
      get(V(3)),
      simd(I16X8_NARROW_S),
      simd(I8X16_NARROW_S),
      simd(V128_STORE, ...mem(4, 0)),
    );
    emit(get(2), get(4), i32(5), I32_SHL, I32_ADD);
    emit(
      get(V(4)),
      get(V(5)),
      simd(I16X8_NARROW_S),
      get(V(6)),
      get(V(7)),
      simd(I16X8_NARROW_S),
      simd(I8X16_NARROW_S),
      simd(V128_STORE, ...mem(4, 16)),
    );
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
function quantWideFunction(
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
  const G = 24, GEND = 25, GROUP = 16;
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
        ...q(k),
        ...q(k + 1),
        ...simd(I16X8_NARROW_S),
        ...q(k + 2),
        ...q(k + 3),
        ...simd(I16X8_NARROW_S),
        ...simd(I8X16_NARROW_U),
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
        ...get(T),
        ...simd(F32X4_TRUNC),
        ...get(T),
        ...get(SIGN),
        ...simd(V128_AND),
        ...f32c(1),
        ...simd(F32X4_SPLAT),
        ...simd(V128_OR),
        ...get(T),
        ...get(T),
        ...simd(F32X4_TRUNC),
        ...simd(F32X4_SUB),
        ...simd(F32X4_ABS),
        ...f32c(0.5),
        ...simd(F32X4_SPLAT),
        ...simd(F32X4_GE),
        ...simd(V128_AND),
        ...simd(F32X4_ADD),
        ...simd(trunc),
      ];
      for (const k of [0, 4]) {
        emit(get(2), get(4), i32(5), I32_SHL, I32_ADD);
        emit(q(k), q(k + 1), simd(I16X8_NARROW_S));
        emit(q(k + 2), q(k + 3), simd(I16X8_NARROW_S), simd(I8X16_NARROW_S));
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
  ]);
  const body = [...locals, ...code];
  return [...uleb(body.length), ...body];
}

/**
 * The module's bytes; `relaxed`: with the relaxed-SIMD truncation in the
 * one-pass kernels (a runtime without relaxed SIMD refuses to compile it).
 *
 * @example
 * ```ts
 * import { moduleBytes } from "./_simd_module.ts";
 * const mod = new WebAssembly.Module(moduleBytes(false) as BufferSource);
 * console.log(WebAssembly.Module.exports(mod).length); // 8
 * ```
 */
export function moduleBytes(relaxed: boolean): Uint8Array {
  const type = section(
    1,
    vec([[0x60, ...vec([[0x7f], [0x7f], [0x7f], [0x7f]]), ...vec([[0x7f]])]]),
  );
  const imports = section(
    2,
    vec([[...str("env"), ...str("mem"), 0x02, 0x00, ...uleb(1)]]),
  );
  const funcs = section(3, vec(Array.from({ length: 8 }, () => [0x00])));
  const exports = section(
    7,
    vec([
      [...str("q8"), 0x00, 0x00],
      [...str("q4"), 0x00, 0x01],
      [...str("f16"), 0x00, 0x02],
      [...str("bf16"), 0x00, 0x03],
      [...str("q8f16"), 0x00, 0x04],
      [...str("q4f16"), 0x00, 0x05],
      [...str("q8bf16"), 0x00, 0x06],
      [...str("q4bf16"), 0x00, 0x07],
    ]),
  );
  const code = section(
    10,
    vec([
      quantFunction("q8"),
      quantFunction("q4"),
      widenFunction("F16"),
      widenFunction("BF16"),
      quantWideFunction({ kind: "q8", dtype: "F16", relaxed }),
      quantWideFunction({ kind: "q4", dtype: "F16", relaxed }),
      quantWideFunction({ kind: "q8", dtype: "BF16", relaxed }),
      quantWideFunction({ kind: "q4", dtype: "BF16", relaxed }),
    ]),
  );
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...type,
    ...imports,
    ...funcs,
    ...exports,
    ...code,
  ]);
}
