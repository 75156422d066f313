// Matvec, q4 weights: out[t, row_off + r] = dot(x[t, :], W[r, :]) (+ bias[row_off + r]) for one row part.
// W: q4 data u8 [n, nb*16] bound as vec4<u32> (1 per 32-element block: byte j = element j low nibble, element j+16
// high nibble; x = d * (nibble - 8)), scales f16 [n, nb] read as u32 pairs (integer decode, no shader-f16);
// k % 32 == 0. x: f32 [T, k] as vec4<f32>; token = workgroup_id.z.
// Each invocation computes RI = 16 consecutive rows: per block it loads the 32 x values once and reuses them for the
// 16 rows. Nibbles are isolated in place with one AND per byte lane (v & 0xf << 8c, high nibbles from v >> 4) and
// converted directly; the 2^(8c) factor of byte lane c is removed once per block by dot(p, INV), and the -8 offset by
// subtracting 8 * sum(x) per block. Rows past n are clamped for loads, not stored. Binding order: inputs, output, params.
struct Params { n: u32, k: u32, t: u32, row_off: u32, out_stride: u32, has_bias: u32, nb: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> sc: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
fn h2f(h: u32) -> f32 {
  return bitcast<f32>(((h & 0x7fffu) << 13u) | ((h & 0x8000u) << 16u)) * 5.192296858534828e33;
}
fn scale(idx: u32) -> f32 { return h2f(sc[idx >> 1u] >> (16u * (idx & 1u))); }
override WG: u32 = 8;
const MK = vec4<u32>(0xfu, 0xf00u, 0xf0000u, 0xf000000u);
const INV = vec4<f32>(1.0, 0.00390625, 1.52587890625e-05, 5.9604644775390625e-08);
fn nib(v: u32) -> vec4<f32> { return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(v) & MK)); }
fn dot_block(u: vec4<u32>, xc: array<vec4<f32>, 8>) -> f32 {
  let hx = u.x >> 4u; let hy = u.y >> 4u; let hz = u.z >> 4u; let hw = u.w >> 4u;
  let p = nib(u.x) * xc[0] + nib(u.y) * xc[1] + nib(u.z) * xc[2] + nib(u.w) * xc[3]
        + nib(hx) * xc[4] + nib(hy) * xc[5] + nib(hz) * xc[6] + nib(hw) * xc[7];
  return dot(p, INV);
}
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = ((wid.x + wid.y * nwg.x) * WG + lid) * 16u;
  if (r >= p.n) { return; }
  let last = p.n - 1u;
  let nb = p.nb;
  let xb = wid.z * (p.k / 4u);
  let r0 = r * nb; var a0 = 0.0;
  let r1 = min(r + 1u, last) * nb; var a1 = 0.0;
  let r2 = min(r + 2u, last) * nb; var a2 = 0.0;
  let r3 = min(r + 3u, last) * nb; var a3 = 0.0;
  let r4 = min(r + 4u, last) * nb; var a4 = 0.0;
  let r5 = min(r + 5u, last) * nb; var a5 = 0.0;
  let r6 = min(r + 6u, last) * nb; var a6 = 0.0;
  let r7 = min(r + 7u, last) * nb; var a7 = 0.0;
  let r8 = min(r + 8u, last) * nb; var a8 = 0.0;
  let r9 = min(r + 9u, last) * nb; var a9 = 0.0;
  let r10 = min(r + 10u, last) * nb; var a10 = 0.0;
  let r11 = min(r + 11u, last) * nb; var a11 = 0.0;
  let r12 = min(r + 12u, last) * nb; var a12 = 0.0;
  let r13 = min(r + 13u, last) * nb; var a13 = 0.0;
  let r14 = min(r + 14u, last) * nb; var a14 = 0.0;
  let r15 = min(r + 15u, last) * nb; var a15 = 0.0;
  for (var b = 0u; b < nb; b++) {
    {
    let xo = xb + 8u * (b);
    let xc = array<vec4<f32>, 8>(x[xo], x[xo + 1u], x[xo + 2u], x[xo + 3u], x[xo + 4u], x[xo + 5u], x[xo + 6u], x[xo + 7u]);
    let xs8 = 8.0 * dot(xc[0] + xc[1] + xc[2] + xc[3] + xc[4] + xc[5] + xc[6] + xc[7], vec4<f32>(1.0));
    a0 += scale(r0 + b) * (dot_block(w[r0 + b], xc) - xs8);
    a1 += scale(r1 + b) * (dot_block(w[r1 + b], xc) - xs8);
    a2 += scale(r2 + b) * (dot_block(w[r2 + b], xc) - xs8);
    a3 += scale(r3 + b) * (dot_block(w[r3 + b], xc) - xs8);
    a4 += scale(r4 + b) * (dot_block(w[r4 + b], xc) - xs8);
    a5 += scale(r5 + b) * (dot_block(w[r5 + b], xc) - xs8);
    a6 += scale(r6 + b) * (dot_block(w[r6 + b], xc) - xs8);
    a7 += scale(r7 + b) * (dot_block(w[r7 + b], xc) - xs8);
    a8 += scale(r8 + b) * (dot_block(w[r8 + b], xc) - xs8);
    a9 += scale(r9 + b) * (dot_block(w[r9 + b], xc) - xs8);
    a10 += scale(r10 + b) * (dot_block(w[r10 + b], xc) - xs8);
    a11 += scale(r11 + b) * (dot_block(w[r11 + b], xc) - xs8);
    a12 += scale(r12 + b) * (dot_block(w[r12 + b], xc) - xs8);
    a13 += scale(r13 + b) * (dot_block(w[r13 + b], xc) - xs8);
    a14 += scale(r14 + b) * (dot_block(w[r14 + b], xc) - xs8);
    a15 += scale(r15 + b) * (dot_block(w[r15 + b], xc) - xs8);
    }
  }
  let ob = wid.z * p.out_stride + p.row_off + r;
  let s = array<f32, 16>(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15);
  for (var j = 0u; j < 16u; j++) {
    if (r + j < p.n) {
      var v = s[j];
      if (p.has_bias != 0u) { v += bias[p.row_off + r + j]; }
      o[ob + j] = v;
    }
  }
}
