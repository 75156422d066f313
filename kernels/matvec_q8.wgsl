// Matvec, q8 weights: out[t, row_off + r] = dot(x[t, :], W[r, :]) (+ bias[row_off + r]) for one row part.
// W: q8 data i8 [n, nb*32] bound as vec4<u32> (2 per 32-element block; x = d * q), scales f16 [n, nb] read as u32
// pairs and decoded with integer ops (no shader-f16); k % 32 == 0. x: f32 [T, k] as vec4<f32>; token = workgroup_id.z.
// Each invocation computes RI = 8 consecutive rows: per block it loads the 32 x values once and reuses them for the
// 8 rows (on lavapipe every storage load costs a per-lane scalar loop, so loads per byte are what bound the speed);
// per-row scalar accumulators; no barriers, no workgroup memory. Rows past n are clamped for loads, not stored.
// Binding order: inputs, output, params.
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
const SH = vec4<u32>(24u, 16u, 8u, 0u);
fn dq(v: u32) -> vec4<f32> { return vec4<f32>((vec4<i32>(bitcast<i32>(v)) << SH) >> vec4<u32>(24u)); }
fn dot_block(u: vec4<u32>, v: vec4<u32>, xc: array<vec4<f32>, 8>) -> f32 {
  let p = dq(u.x) * xc[0] + dq(u.y) * xc[1] + dq(u.z) * xc[2] + dq(u.w) * xc[3]
        + dq(v.x) * xc[4] + dq(v.y) * xc[5] + dq(v.z) * xc[6] + dq(v.w) * xc[7];
  return dot(p, vec4<f32>(1.0));
}
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = ((wid.x + wid.y * nwg.x) * WG + lid) * 8u;
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
  for (var b = 0u; b < nb; b++) {
    {
    let xo = xb + 8u * (b);
    let xc = array<vec4<f32>, 8>(x[xo], x[xo + 1u], x[xo + 2u], x[xo + 3u], x[xo + 4u], x[xo + 5u], x[xo + 6u], x[xo + 7u]);
    { let i = 2u * (r0 + b); a0 += scale(r0 + b) * dot_block(w[i], w[i + 1u], xc); }
    { let i = 2u * (r1 + b); a1 += scale(r1 + b) * dot_block(w[i], w[i + 1u], xc); }
    { let i = 2u * (r2 + b); a2 += scale(r2 + b) * dot_block(w[i], w[i + 1u], xc); }
    { let i = 2u * (r3 + b); a3 += scale(r3 + b) * dot_block(w[i], w[i + 1u], xc); }
    { let i = 2u * (r4 + b); a4 += scale(r4 + b) * dot_block(w[i], w[i + 1u], xc); }
    { let i = 2u * (r5 + b); a5 += scale(r5 + b) * dot_block(w[i], w[i + 1u], xc); }
    { let i = 2u * (r6 + b); a6 += scale(r6 + b) * dot_block(w[i], w[i + 1u], xc); }
    { let i = 2u * (r7 + b); a7 += scale(r7 + b) * dot_block(w[i], w[i + 1u], xc); }
    }
  }
  let ob = wid.z * p.out_stride + p.row_off + r;
  let s = array<f32, 8>(a0, a1, a2, a3, a4, a5, a6, a7);
  for (var j = 0u; j < 8u; j++) {
    if (r + j < p.n) {
      var v = s[j];
      if (p.has_bias != 0u) { v += bias[p.row_off + r + j]; }
      o[ob + j] = v;
    }
  }
}
