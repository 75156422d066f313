/**
 * Encoders for the ggml block types of ./ggml_blocks.ts, written from the byte
 * layouts in docs/format.md (not from ggml's quantizer): valid blocks with a
 * simple choice of scales whose error is close to llama.cpp's reference
 * quantizer (docs/format.md §6.3), but not bit-identical to it.
 *
 * Choices: symmetric types (Q4_0, Q5_0, Q8_0, Q3_K, Q6_K, IQ4_NL) scale the
 * element of largest magnitude onto the most negative code; asymmetric types
 * (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) map [min(0, lo), hi] onto the codes (the
 * K-quants store the min as a positive offset, so lo is clamped to <= 0,
 * then refit (scale, min) by least squares). K-quant sub-block scales are quantized against a super-block scale `d =
 * max / code_max` (f16), and the elements are then rounded against the
 * scales as stored, so rounding of the scales does not add bias.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { f16ToF32, f32ToF16 } from "./half.ts";
import {
  GGML_BLOCKS,
  type GgmlBlockType,
  IQ4_NL_VALUES,
} from "./ggml_blocks.ts";

const clamp = (v: number, lo: number, hi: number) =>
  v < lo ? lo : v > hi ? hi : v;

/** Rounds f32 to the f16 it is stored as and returns [bits, value]. */
function h16(x: number): [number, number] {
  const bits = f32ToF16(x);
  return [bits, f16ToF32(bits)];
}

function put16(b: Uint8Array, o: number, bits: number): void {
  b[o] = bits & 0xff;
  b[o + 1] = bits >> 8;
}

/** The value of largest magnitude (sign kept; the first on ties). */
function absMax(x: Float32Array, o: number, n: number): number {
  let amax = 0, max = 0;
  for (let i = 0; i < n; i++) {
    const a = Math.abs(x[o + i]);
    if (a > amax) {
      amax = a;
      max = x[o + i];
    }
  }
  return max;
}

/**
 * Q3_K / Q6_K: the signed scales `s_g` (`symScale` with `nmax`) of the 16
 * sub-blocks of 16 at `x[xo..]`, and the super-block scale
 * `d = max|s| / smax` rounded to f16, stored at `b[at]`.
 */
function subScales16(
  x: Float32Array,
  xo: number,
  p: { nmax: number; smax: number; b: Uint8Array; at: number },
): { s: Float64Array; d: number } {
  const s = new Float64Array(16);
  for (let g = 0; g < 16; g++) s[g] = symScale(x, xo + g * 16, 16, p.nmax);
  const [db, d] = h16(Math.max(...s.map(Math.abs)) / p.smax);
  put16(p.b, p.at, db);
  return { s, d };
}

/**
 * The scale of a symmetric sub-block with codes in [-nmax, nmax-1]: among
 * max / -(nmax - k/4) for k = 0..8 (max = the value of largest magnitude),
 * the one with the least squared error.
 */
function symScale(x: Float32Array, o: number, n: number, nmax: number) {
  const max = absMax(x, o, n);
  let best = max / -nmax, bestErr = Infinity;
  for (let k = 0; k <= 8; k++) {
    const s = max / -(nmax - k / 4);
    let err = 0;
    for (let i = 0; i < n; i++) {
      err += (code(x[o + i], s, -nmax, nmax - 1) * s - x[o + i]) ** 2;
    }
    if (err < bestErr) {
      bestErr = err;
      best = s;
    }
  }
  return best;
}

function minMax(x: Float32Array, o: number, n: number): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < n; i++) {
    lo = Math.min(lo, x[o + i]);
    hi = Math.max(hi, x[o + i]);
  }
  return [lo, hi];
}

/** Rounds x/d to an integer code in [lo, hi] (0 when d is 0). */
const code = (x: number, d: number, lo: number, hi: number) =>
  d === 0 ? clamp(0, lo, hi) : clamp(Math.round(x / d), lo, hi);

/** Encodes one block of `x` at `xo` into `b` at `o`. */
type BlockEncoder = (
  x: Float32Array,
  xo: number,
  b: Uint8Array,
  o: number,
) => void;

/** Symmetric 32-element block: d = max / -half, q = round(x/d) + half. */
function legacySym(bits: 4 | 5) {
  const halfRange = 1 << (bits - 1), top = (1 << bits) - 1;
  return (x: Float32Array, xo: number, b: Uint8Array, o: number) => {
    const [db, d] = h16(absMax(x, xo, 32) / -halfRange);
    put16(b, o, db);
    let qh = 0;
    const qs = o + 2 + (bits === 5 ? 4 : 0);
    for (let j = 0; j < 16; j++) {
      const q0 = code(x[xo + j], d, -halfRange, top - halfRange) + halfRange;
      const q1 = code(x[xo + j + 16], d, -halfRange, top - halfRange) +
        halfRange;
      b[qs + j] = (q0 & 0xf) | ((q1 & 0xf) << 4);
      qh |= ((q0 >> 4) << j) | ((q1 >> 4) << (j + 16));
    }
    if (bits === 5) writeU32(b, o + 2, qh);
  };
}

/** Asymmetric 32-element block: m = min, d = (max - min) / top, q = round((x-m)/d). */
function legacyAsym(bits: 4 | 5) {
  const top = (1 << bits) - 1;
  return (x: Float32Array, xo: number, b: Uint8Array, o: number) => {
    const [lo, hi] = minMax(x, xo, 32);
    const [db, d] = h16((hi - lo) / top);
    const [mb, m] = h16(lo);
    put16(b, o, db);
    put16(b, o + 2, mb);
    let qh = 0;
    const qs = o + 4 + (bits === 5 ? 4 : 0);
    for (let j = 0; j < 16; j++) {
      const q0 = code(x[xo + j] - m, d, 0, top);
      const q1 = code(x[xo + j + 16] - m, d, 0, top);
      b[qs + j] = (q0 & 0xf) | ((q1 & 0xf) << 4);
      qh |= ((q0 >> 4) << j) | ((q1 >> 4) << (j + 16));
    }
    if (bits === 5) writeU32(b, o + 4, qh);
  };
}

function writeU32(b: Uint8Array, o: number, v: number): void {
  for (let i = 0; i < 4; i++) b[o + i] = (v >>> (8 * i)) & 0xff;
}

/** Nearest IQ4_NL code of v (a value already divided by the scale). */
function nearestIq4(v: number): number {
  let best = 0, err = Infinity;
  for (let k = 0; k < 16; k++) {
    const e = Math.abs(IQ4_NL_VALUES[k] - v);
    if (e < err) {
      err = e;
      best = k;
    }
  }
  return best;
}

/**
 * Per-sub-block asymmetric parameters of a K-quant super-block: for each of
 * `groups` sub-blocks of `size` elements, scale = (hi - min(0, lo)) / top and
 * min = -min(0, lo) >= 0, then 6- or 4-bit codes against f16 d and dmin.
 */
function kAsymScales(
  x: Float32Array,
  xo: number,
  groups: number,
  size: number,
  top: number,
  scaleBits: number,
) {
  const scale = new Float64Array(groups), min = new Float64Array(groups);
  for (let g = 0; g < groups; g++) {
    const [lo, hi] = minMax(x, xo + g * size, size);
    const l0 = Math.min(0, lo);
    scale[g] = (Math.max(hi, l0) - l0) / top;
    min[g] = -l0;
    refineAsym(x, xo + g * size, size, top, scale, min, g);
  }
  const smax = (1 << scaleBits) - 1;
  const [db, d] = h16(Math.max(...scale) / smax);
  const [mb, dmin] = h16(Math.max(...min) / smax);
  const sc = new Uint8Array(groups), mn = new Uint8Array(groups);
  for (let g = 0; g < groups; g++) {
    sc[g] = code(scale[g], d, 0, smax);
    mn[g] = code(min[g], dmin, 0, smax);
  }
  return { db, d, mb, dmin, sc, mn };
}

/**
 * Least-squares refinement of one sub-block's (scale, min): with the codes
 * fixed, x ≈ scale·q − min is a linear fit; refit, re-round the codes, and
 * keep the pair with the least squared error (3 rounds). The min stays >= 0.
 */
function refineAsym(
  x: Float32Array,
  o: number,
  n: number,
  top: number,
  scale: Float64Array,
  min: Float64Array,
  g: number,
): void {
  const sse = (s: number, m: number) => {
    let e = 0;
    for (let i = 0; i < n; i++) {
      e += (code(x[o + i] + m, s, 0, top) * s - m - x[o + i]) ** 2;
    }
    return e;
  };
  let best = sse(scale[g], min[g]);
  let s = scale[g], m = min[g];
  for (let round = 0; round < 3 && s > 0; round++) {
    let sq = 0, sqq = 0, sx = 0, sqx = 0;
    for (let i = 0; i < n; i++) {
      const q = code(x[o + i] + m, s, 0, top);
      sq += q;
      sqq += q * q;
      sx += x[o + i];
      sqx += q * x[o + i];
    }
    const det = n * sqq - sq * sq;
    if (det <= 0) break;
    const ns = (n * sqx - sq * sx) / det;
    const nm = Math.max(0, (ns * sq - sx) / n);
    if (!(ns > 0)) break;
    const e = sse(ns, nm);
    s = ns;
    m = nm;
    if (e < best) {
      best = e;
      scale[g] = ns;
      min[g] = nm;
    }
  }
}

/** Writes the 8 six-bit scales and mins of a Q4_K/Q5_K super-block at `s`. */
function packKScales(b: Uint8Array, s: number, sc: Uint8Array, mn: Uint8Array) {
  for (let j = 0; j < 4; j++) {
    b[s + j] = sc[j] | ((sc[j + 4] >> 4) << 6);
    b[s + j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
    b[s + j + 8] = (sc[j + 4] & 0xf) | ((mn[j + 4] & 0xf) << 4);
  }
}

/** Q4_K (bits 4) or Q5_K (bits 5). */
function kQuant45(bits: 4 | 5): BlockEncoder {
  const top = (1 << bits) - 1;
  return (x, xo, b, o) => {
    const p = kAsymScales(x, xo, 8, 32, top, 6);
    put16(b, o, p.db);
    put16(b, o + 2, p.mb);
    packKScales(b, o + 4, p.sc, p.mn);
    const qs = o + (bits === 5 ? 48 : 16);
    for (let g = 0; g < 8; g++) {
      const dl = Math.fround(p.d * p.sc[g]), ml = Math.fround(p.dmin * p.mn[g]);
      const c = g >> 1, hiNibble = g & 1;
      for (let l = 0; l < 32; l++) {
        const q = code(x[xo + g * 32 + l] + ml, dl, 0, top);
        b[qs + c * 32 + l] |= (q & 0xf) << (4 * hiNibble);
        if (bits === 5) b[o + 16 + l] |= (q >> 4) << g;
      }
    }
  };
}

const ENCODERS: Record<GgmlBlockType, BlockEncoder> = {
  Q4_0: legacySym(4),
  Q5_0: legacySym(5),
  Q4_1: legacyAsym(4),
  Q5_1: legacyAsym(5),
  Q8_0(x, xo, b, o) {
    const [db, d] = h16(Math.abs(absMax(x, xo, 32)) / 127);
    put16(b, o, db);
    for (let j = 0; j < 32; j++) b[o + 2 + j] = code(x[xo + j], d, -127, 127);
  },
  IQ4_NL(x, xo, b, o) {
    // try scales around max / -127 and keep the one with the least squared error
    const max = absMax(x, xo, 32);
    let best = 0, bestErr = Infinity;
    for (let t = -8; t <= 8; t++) {
      const d = f16ToF32(f32ToF16((max / -127) * (1 + t / 32)));
      let err = 0;
      for (let j = 0; j < 32; j++) {
        const v = d === 0 ? 0 : IQ4_NL_VALUES[nearestIq4(x[xo + j] / d)] * d;
        err += (v - x[xo + j]) ** 2;
      }
      if (err < bestErr) {
        bestErr = err;
        best = d;
      }
    }
    put16(b, o, f32ToF16(best));
    for (let j = 0; j < 16; j++) {
      const q0 = best === 0 ? 8 : nearestIq4(x[xo + j] / best);
      const q1 = best === 0 ? 8 : nearestIq4(x[xo + j + 16] / best);
      b[o + 2 + j] = q0 | (q1 << 4);
    }
  },
  Q2_K(x, xo, b, o) {
    const p = kAsymScales(x, xo, 16, 16, 3, 4);
    for (let g = 0; g < 16; g++) b[o + g] = p.sc[g] | (p.mn[g] << 4);
    put16(b, o + 80, p.db);
    put16(b, o + 82, p.mb);
    for (let g = 0; g < 16; g++) {
      const dl = Math.fround(p.d * p.sc[g]), ml = Math.fround(p.dmin * p.mn[g]);
      const n = g >> 3, j = (g >> 1) & 3, l0 = (g & 1) * 16;
      for (let l = l0; l < l0 + 16; l++) {
        const q = code(x[xo + g * 16 + l - l0] + ml, dl, 0, 3);
        b[o + 16 + n * 32 + l] |= q << (2 * j);
      }
    }
  },
  Q3_K(x, xo, b, o) {
    // 16 sub-blocks of 16: signed scale s_g = max_g / -4, 6-bit codes against d
    const { s, d } = subScales16(x, xo, { nmax: 4, smax: 31, b, at: o + 108 });
    for (let g = 0; g < 16; g++) {
      const sc = code(s[g], d, -32, 31) + 32;
      if (g < 8) b[o + 96 + g] |= sc & 0xf;
      else b[o + 96 + g - 8] |= (sc & 0xf) << 4;
      b[o + 104 + (g & 3)] |= (sc >> 4) << (2 * (g >> 2));
      const dl = Math.fround(d * (sc - 32));
      const n = g >> 3, j = (g >> 1) & 3, l0 = (g & 1) * 16;
      for (let l = l0; l < l0 + 16; l++) {
        const u = code(x[xo + g * 16 + l - l0], dl, -4, 3) + 4; // 0..7
        b[o + 32 + n * 32 + l] |= (u & 3) << (2 * j);
        if (u & 4) b[o + l] |= 1 << (n * 4 + j);
      }
    }
  },
  Q4_K: kQuant45(4),
  Q5_K: kQuant45(5),
  Q6_K(x, xo, b, o) {
    // 16 sub-blocks of 16: s_g ~ max_g / -32, int8 codes against d = max|s| / 127
    const { s, d } = subScales16(x, xo, {
      nmax: 32,
      smax: 127,
      b,
      at: o + 208,
    });
    for (let g = 0; g < 16; g++) {
      const sc = code(s[g], d, -128, 127);
      b[o + 192 + g] = sc & 0xff;
      const dl = Math.fround(d * sc);
      const n = g >> 3, k = (g >> 1) & 3, l0 = (g & 1) * 16;
      for (let l = l0; l < l0 + 16; l++) {
        const q = code(x[xo + g * 16 + l - l0], dl, -32, 31) + 32; // 0..63
        const ql = o + n * 64 + (k & 1) * 32 + l;
        b[ql] |= (q & 0xf) << (4 * (k >> 1));
        b[o + 128 + n * 32 + l] |= (q >> 4) << (2 * k);
      }
    }
  },
};

/**
 * Encodes `x` (a whole number of blocks, e.g. rows whose length is a multiple
 * of the block size) as ggml `type` blocks.
 *
 * @throws {UsageError} when `x.length` is not a multiple of the block size.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quantizeGgml } from "./ggml_encode.ts";
 * import { dequantizeGgml } from "./ggml_blocks.ts";
 * const x = Float32Array.from({ length: 256 }, (_, i) => Math.sin(i));
 * const back = dequantizeGgml("Q6_K", quantizeGgml("Q6_K", x), 256);
 * assert.ok(back.every((v, i) => Math.abs(v - x[i]) < 0.02));
 * ```
 */
export function quantizeGgml(type: GgmlBlockType, x: Float32Array): Uint8Array {
  const { elems, bytes } = GGML_BLOCKS[type];
  if (x.length % elems !== 0) {
    throw new UsageError(
      `${type}: ${x.length} values are not a whole number of ${elems}-element blocks`,
    );
  }
  const nb = x.length / elems;
  const out = new Uint8Array(nb * bytes);
  const enc = ENCODERS[type];
  for (let i = 0; i < nb; i++) enc(x, i * elems, out, i * bytes);
  return out;
}
