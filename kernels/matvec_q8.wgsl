// Matvec, q8 weights: out[t, row_off + r] = dot(x[t, :], W[r, :]) (+ bias[row_off + r]) for one row part.
// W: q8 data i8 [n, nb*32] bound as vec4<u32> (2 per block), scales f16 [n, nb] as u32 pairs; k % 32 == 0.
// x: f32 [T, k] bound as vec4<f32>; token t = workgroup_id.z; row groups of 4 folded over workgroup_id.x/y.
// Each invocation streams 4 consecutive rows with wide vec4 loads, dequantizing in registers; no barriers and
// no workgroup memory (lavapipe runs a workgroup as 8-wide SIMD on one CPU core; barriers are costly there).
// Rows past n are clamped for loads and not stored. Binding order: inputs, output, params.
struct Params { n: u32, k: u32, t: u32, row_off: u32, out_stride: u32, has_bias: u32, nb: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> sc: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
fn scale(idx: u32) -> f32 {
  let pair = unpack2x16float(sc[idx >> 1u]);
  return select(pair.x, pair.y, (idx & 1u) == 1u);
}
const SH = vec4<u32>(24u, 16u, 8u, 0u);
fn dq(v: u32) -> vec4<f32> { return vec4<f32>((vec4<i32>(bitcast<i32>(v)) << SH) >> vec4<u32>(24u)); }
fn blk(u: vec4<u32>, v: vec4<u32>, xs: array<vec4<f32>, 8>) -> vec4<f32> {
  return dq(u.x) * xs[0] + dq(u.y) * xs[1] + dq(u.z) * xs[2] + dq(u.w) * xs[3]
       + dq(v.x) * xs[4] + dq(v.y) * xs[5] + dq(v.z) * xs[6] + dq(v.w) * xs[7];
}
override WG: u32 = 16;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let r = ((wid.x + wid.y * nwg.x) * WG + lid) * 4u;
  if (r >= p.n) { return; }
  let last = p.n - 1u;
  let nb = p.nb;
  let r0 = r;
  let r1 = min(r + 1u, last);
  let r2 = min(r + 2u, last);
  let r3 = min(r + 3u, last);
  let xb = wid.z * (p.k / 4u);
  var a0 = vec4<f32>(0.0); var a1 = vec4<f32>(0.0); var a2 = vec4<f32>(0.0); var a3 = vec4<f32>(0.0);
  for (var b = 0u; b < nb; b++) {
    let xo = xb + 8u * b;
    let xs = array<vec4<f32>, 8>(x[xo], x[xo + 1u], x[xo + 2u], x[xo + 3u], x[xo + 4u], x[xo + 5u], x[xo + 6u], x[xo + 7u]);
    { let wi = 2u * (r0 * nb + b); a0 += scale(r0 * nb + b) * blk(w[wi], w[wi + 1u], xs); }
    { let wi = 2u * (r1 * nb + b); a1 += scale(r1 * nb + b) * blk(w[wi], w[wi + 1u], xs); }
    { let wi = 2u * (r2 * nb + b); a2 += scale(r2 * nb + b) * blk(w[wi], w[wi + 1u], xs); }
    { let wi = 2u * (r3 * nb + b); a3 += scale(r3 * nb + b) * blk(w[wi], w[wi + 1u], xs); }
  }
  let ob = wid.z * p.out_stride + p.row_off + r;
  let s = vec4<f32>(dot(a0, vec4<f32>(1.0)), dot(a1, vec4<f32>(1.0)), dot(a2, vec4<f32>(1.0)), dot(a3, vec4<f32>(1.0)));
  for (var j = 0u; j < 4u; j++) {
    if (r + j < p.n) {
      var v = s[j];
      if (p.has_bias != 0u) { v += bias[p.row_off + r + j]; }
      o[ob + j] = v;
    }
  }
}
