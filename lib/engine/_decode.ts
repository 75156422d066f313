/**
 * Host-side decoding of raw little-endian tensor bytes to f32 (norm weights,
 * biases and embedding rows), including q8/q4 rows (Strata layout, see
 * docs/format.md: blocks of 32, one f16 scale per block).
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

/**
 * Decodes one quantized row: `data` is the row's packed bytes (q8: nb*32
 * int8; q4: nb*16 bytes, low nibble = element j, high = j+16), `scales` its
 * nb f16 scales (raw bytes); writes `cols` floats into `out`.
 */
export function decodeQuantRow(
  type: "q8" | "q4",
  data: Uint8Array,
  scales: Uint8Array,
  cols: number,
  out: Float32Array,
): void {
  const nb = Math.ceil(cols / 32);
  const sv = new DataView(scales.buffer, scales.byteOffset, scales.byteLength);
  for (let b = 0; b < nb; b++) {
    const d = halfToF32(sv.getUint16(2 * b, true));
    for (let j = 0; j < 32; j++) {
      const c = b * 32 + j;
      if (c >= cols) break;
      let q: number;
      if (type === "q8") {
        q = (data[c] << 24) >> 24;
      } else {
        const byte = data[b * 16 + (j & 15)];
        q = (j < 16 ? byte & 15 : byte >> 4) - 8;
      }
      out[c] = d * q;
    }
  }
}
