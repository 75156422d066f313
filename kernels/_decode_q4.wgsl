// Decode of q4 weights: blocks of 32 along a row, data u8 [n, nb*16] (one vec4<u32> per block; byte j = element j in
// the low nibble, element j + 16 in the high nibble; x = d * (nibble - 8)), scales f16 [n, nb] (scale(i)).
// @section block: block i for matvec_blocks / matmul_blocks (w: vec4<u32>).
// block_dot isolates the nibbles in place with one AND per byte lane (v & 0xf << 8c, high nibbles from v >> 4) and
// converts them directly; the 2^(8c) factor of byte lane c goes once per block with dot(p, INV), the -8 offset by
// subtracting 8 * sum(x) (xs8). dec() shifts each nibble down instead (the matmul tile reuses each value 4 times).
const MK = vec4<u32>(0xfu, 0xf00u, 0xf0000u, 0xf000000u);
const INV = vec4<f32>(1.0, 0.00390625, 1.52587890625e-05, 5.9604644775390625e-08);
fn nib(v: u32) -> vec4<f32> { return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(v) & MK)); }
fn dot_block(u: vec4<u32>, xc: array<vec4<f32>, 8>) -> f32 {
  let hx = u.x >> 4u; let hy = u.y >> 4u; let hz = u.z >> 4u; let hw = u.w >> 4u;
  let p = nib(u.x) * xc[0] + nib(u.y) * xc[1] + nib(u.z) * xc[2] + nib(u.w) * xc[3]
        + nib(hx) * xc[4] + nib(hy) * xc[5] + nib(hz) * xc[6] + nib(hw) * xc[7];
  return dot(p, INV);
}
fn block_dot(i: u32, xc: array<vec4<f32>, 8>, xs8: f32) -> f32 { return dot_block(w[i], xc) - xs8; }
const SH = vec4<u32>(0u, 8u, 16u, 24u);
fn nlo(v: u32) -> vec4<f32> { return vec4<f32>((vec4<u32>(v) >> SH) & vec4<u32>(15u)) - vec4<f32>(8.0); }
fn nhi(v: u32) -> vec4<f32> { return vec4<f32>((vec4<u32>(v) >> (SH + vec4<u32>(4u))) & vec4<u32>(15u)) - vec4<f32>(8.0); }
fn load_block(i: u32) -> vec4<u32> { return w[i]; }
fn dec(b: vec4<u32>, j: u32) -> vec4<f32> {
  if (j < 4u) { return nlo(b[j]); }
  return nhi(b[j - 4u]);
}
// @section scalar: element c of row r for matmul_generic (w: array<u32>).
fn weight_at(r: u32, c: u32) -> f32 {
  let j = c & 31u;
  let byte = r * params.nb * 16u + (c / 32u) * 16u + (j & 15u);
  let q = (w[byte >> 2u] >> (8u * (byte & 3u) + select(0u, 4u, j >= 16u))) & 15u;
  return (f32(q) - 8.0) * scale(r * params.nb + c / 32u);
}
