/**
 * Host-side decoding of raw little-endian float tensor bytes to f32 (norm
 * weights, biases and float embedding rows; packed rows decode through their
 * encoding, lib/quant/encoding.ts).
 *
 * @module
 */

const F16_EXP = new Float32Array(32);
for (let e = 0; e < 32; e++) F16_EXP[e] = 2 ** (e - 15);

/** One IEEE half (bits) as a number. */
export function halfToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * F16_EXP[e] * (1 + m / 1024);
}

/** Decodes F32/F16/BF16 bytes to a new Float32Array. */
export function decodeFloats(
  raw: Uint8Array,
  dtype: "F32" | "F16" | "BF16",
): Float32Array {
  if (dtype === "F32") {
    const out = new Float32Array(raw.byteLength / 4);
    new Uint8Array(out.buffer).set(raw);
    return out;
  }
  const n = raw.byteLength / 2;
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = new Float32Array(n);
  if (dtype === "BF16") {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) u[i] = dv.getUint16(2 * i, true) << 16;
  } else {
    for (let i = 0; i < n; i++) out[i] = halfToF32(dv.getUint16(2 * i, true));
  }
  return out;
}
