// Matmul (prefill and small batches), f16 or bf16 weights: out[t, row_off + r] = dot(x[t, :], W[r, :]) (+ bias) for
// one row part. W: [n, k] row-major, k % 8 == 0, as vec4<u32>, decoded by lo()/hi() from the dtype's decode file
// (_decode_f16.wgsl or _decode_bf16.wgsl), which lib/gpu/_matmul.ts prepends to this body. x: f32 [T, k] as vec4<f32>.
// Each invocation computes an 8-row x 8-token register tile: per step it loads (and decodes) the 8 rows' weights once
// and the 8 tokens' x once, then does 64 vec4 multiply-adds, so each loaded word feeds 8 products (on lavapipe every
// storage load is a per-lane scalar loop; accumulators that spill go to the stack, which is far cheaper).
// Row groups fold over workgroup_id.x/y, token groups of 8 are workgroup_id.z. Rows/tokens past the end are clamped
// for loads and not stored. Binding order: inputs, output, params.
struct Params { n: u32, k: u32, t: u32, row_off: u32, out_stride: u32, has_bias: u32, nb: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
override WG: u32 = 16;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let r = ((wid.x + wid.y * nwg.x) * WG + lid) * 8u;
  if (r >= p.n) { return; }
  let last = p.n - 1u;
  let t0 = wid.z * 8u;
  let tl = p.t - 1u;
  let k4 = p.k / 4u;
  let k8 = p.k / 8u;
  let nb = p.nb;
  let x0b = t0 * k4;
  let x1b = min(t0 + 1u, tl) * k4;
  let x2b = min(t0 + 2u, tl) * k4;
  let x3b = min(t0 + 3u, tl) * k4;
  let x4b = min(t0 + 4u, tl) * k4;
  let x5b = min(t0 + 5u, tl) * k4;
  let x6b = min(t0 + 6u, tl) * k4;
  let x7b = min(t0 + 7u, tl) * k4;
  let b0 = r * k8;
  let b1 = min(r + 1u, last) * k8;
  let b2 = min(r + 2u, last) * k8;
  let b3 = min(r + 3u, last) * k8;
  let b4 = min(r + 4u, last) * k8;
  let b5 = min(r + 5u, last) * k8;
  let b6 = min(r + 6u, last) * k8;
  let b7 = min(r + 7u, last) * k8;
  var a0_0 = vec4<f32>(0.0);
  var a0_1 = vec4<f32>(0.0);
  var a0_2 = vec4<f32>(0.0);
  var a0_3 = vec4<f32>(0.0);
  var a0_4 = vec4<f32>(0.0);
  var a0_5 = vec4<f32>(0.0);
  var a0_6 = vec4<f32>(0.0);
  var a0_7 = vec4<f32>(0.0);
  var a1_0 = vec4<f32>(0.0);
  var a1_1 = vec4<f32>(0.0);
  var a1_2 = vec4<f32>(0.0);
  var a1_3 = vec4<f32>(0.0);
  var a1_4 = vec4<f32>(0.0);
  var a1_5 = vec4<f32>(0.0);
  var a1_6 = vec4<f32>(0.0);
  var a1_7 = vec4<f32>(0.0);
  var a2_0 = vec4<f32>(0.0);
  var a2_1 = vec4<f32>(0.0);
  var a2_2 = vec4<f32>(0.0);
  var a2_3 = vec4<f32>(0.0);
  var a2_4 = vec4<f32>(0.0);
  var a2_5 = vec4<f32>(0.0);
  var a2_6 = vec4<f32>(0.0);
  var a2_7 = vec4<f32>(0.0);
  var a3_0 = vec4<f32>(0.0);
  var a3_1 = vec4<f32>(0.0);
  var a3_2 = vec4<f32>(0.0);
  var a3_3 = vec4<f32>(0.0);
  var a3_4 = vec4<f32>(0.0);
  var a3_5 = vec4<f32>(0.0);
  var a3_6 = vec4<f32>(0.0);
  var a3_7 = vec4<f32>(0.0);
  var a4_0 = vec4<f32>(0.0);
  var a4_1 = vec4<f32>(0.0);
  var a4_2 = vec4<f32>(0.0);
  var a4_3 = vec4<f32>(0.0);
  var a4_4 = vec4<f32>(0.0);
  var a4_5 = vec4<f32>(0.0);
  var a4_6 = vec4<f32>(0.0);
  var a4_7 = vec4<f32>(0.0);
  var a5_0 = vec4<f32>(0.0);
  var a5_1 = vec4<f32>(0.0);
  var a5_2 = vec4<f32>(0.0);
  var a5_3 = vec4<f32>(0.0);
  var a5_4 = vec4<f32>(0.0);
  var a5_5 = vec4<f32>(0.0);
  var a5_6 = vec4<f32>(0.0);
  var a5_7 = vec4<f32>(0.0);
  var a6_0 = vec4<f32>(0.0);
  var a6_1 = vec4<f32>(0.0);
  var a6_2 = vec4<f32>(0.0);
  var a6_3 = vec4<f32>(0.0);
  var a6_4 = vec4<f32>(0.0);
  var a6_5 = vec4<f32>(0.0);
  var a6_6 = vec4<f32>(0.0);
  var a6_7 = vec4<f32>(0.0);
  var a7_0 = vec4<f32>(0.0);
  var a7_1 = vec4<f32>(0.0);
  var a7_2 = vec4<f32>(0.0);
  var a7_3 = vec4<f32>(0.0);
  var a7_4 = vec4<f32>(0.0);
  var a7_5 = vec4<f32>(0.0);
  var a7_6 = vec4<f32>(0.0);
  var a7_7 = vec4<f32>(0.0);
  for (var i = 0u; i < k8; i++) {
    let v0 = w[b0 + i];
    let v1 = w[b1 + i];
    let v2 = w[b2 + i];
    let v3 = w[b3 + i];
    let v4 = w[b4 + i];
    let v5 = w[b5 + i];
    let v6 = w[b6 + i];
    let v7 = w[b7 + i];
    {
      let w0 = lo(v0);
      let w1 = lo(v1);
      let w2 = lo(v2);
      let w3 = lo(v3);
      let w4 = lo(v4);
      let w5 = lo(v5);
      let w6 = lo(v6);
      let w7 = lo(v7);
      { let xv = x[x0b + 2u * i]; a0_0 += w0 * xv; a1_0 += w1 * xv; a2_0 += w2 * xv; a3_0 += w3 * xv; a4_0 += w4 * xv; a5_0 += w5 * xv; a6_0 += w6 * xv; a7_0 += w7 * xv; }
      { let xv = x[x1b + 2u * i]; a0_1 += w0 * xv; a1_1 += w1 * xv; a2_1 += w2 * xv; a3_1 += w3 * xv; a4_1 += w4 * xv; a5_1 += w5 * xv; a6_1 += w6 * xv; a7_1 += w7 * xv; }
      { let xv = x[x2b + 2u * i]; a0_2 += w0 * xv; a1_2 += w1 * xv; a2_2 += w2 * xv; a3_2 += w3 * xv; a4_2 += w4 * xv; a5_2 += w5 * xv; a6_2 += w6 * xv; a7_2 += w7 * xv; }
      { let xv = x[x3b + 2u * i]; a0_3 += w0 * xv; a1_3 += w1 * xv; a2_3 += w2 * xv; a3_3 += w3 * xv; a4_3 += w4 * xv; a5_3 += w5 * xv; a6_3 += w6 * xv; a7_3 += w7 * xv; }
      { let xv = x[x4b + 2u * i]; a0_4 += w0 * xv; a1_4 += w1 * xv; a2_4 += w2 * xv; a3_4 += w3 * xv; a4_4 += w4 * xv; a5_4 += w5 * xv; a6_4 += w6 * xv; a7_4 += w7 * xv; }
      { let xv = x[x5b + 2u * i]; a0_5 += w0 * xv; a1_5 += w1 * xv; a2_5 += w2 * xv; a3_5 += w3 * xv; a4_5 += w4 * xv; a5_5 += w5 * xv; a6_5 += w6 * xv; a7_5 += w7 * xv; }
      { let xv = x[x6b + 2u * i]; a0_6 += w0 * xv; a1_6 += w1 * xv; a2_6 += w2 * xv; a3_6 += w3 * xv; a4_6 += w4 * xv; a5_6 += w5 * xv; a6_6 += w6 * xv; a7_6 += w7 * xv; }
      { let xv = x[x7b + 2u * i]; a0_7 += w0 * xv; a1_7 += w1 * xv; a2_7 += w2 * xv; a3_7 += w3 * xv; a4_7 += w4 * xv; a5_7 += w5 * xv; a6_7 += w6 * xv; a7_7 += w7 * xv; }
    }
    {
      let w0 = hi(v0);
      let w1 = hi(v1);
      let w2 = hi(v2);
      let w3 = hi(v3);
      let w4 = hi(v4);
      let w5 = hi(v5);
      let w6 = hi(v6);
      let w7 = hi(v7);
      { let xv = x[x0b + 2u * i + 1u]; a0_0 += w0 * xv; a1_0 += w1 * xv; a2_0 += w2 * xv; a3_0 += w3 * xv; a4_0 += w4 * xv; a5_0 += w5 * xv; a6_0 += w6 * xv; a7_0 += w7 * xv; }
      { let xv = x[x1b + 2u * i + 1u]; a0_1 += w0 * xv; a1_1 += w1 * xv; a2_1 += w2 * xv; a3_1 += w3 * xv; a4_1 += w4 * xv; a5_1 += w5 * xv; a6_1 += w6 * xv; a7_1 += w7 * xv; }
      { let xv = x[x2b + 2u * i + 1u]; a0_2 += w0 * xv; a1_2 += w1 * xv; a2_2 += w2 * xv; a3_2 += w3 * xv; a4_2 += w4 * xv; a5_2 += w5 * xv; a6_2 += w6 * xv; a7_2 += w7 * xv; }
      { let xv = x[x3b + 2u * i + 1u]; a0_3 += w0 * xv; a1_3 += w1 * xv; a2_3 += w2 * xv; a3_3 += w3 * xv; a4_3 += w4 * xv; a5_3 += w5 * xv; a6_3 += w6 * xv; a7_3 += w7 * xv; }
      { let xv = x[x4b + 2u * i + 1u]; a0_4 += w0 * xv; a1_4 += w1 * xv; a2_4 += w2 * xv; a3_4 += w3 * xv; a4_4 += w4 * xv; a5_4 += w5 * xv; a6_4 += w6 * xv; a7_4 += w7 * xv; }
      { let xv = x[x5b + 2u * i + 1u]; a0_5 += w0 * xv; a1_5 += w1 * xv; a2_5 += w2 * xv; a3_5 += w3 * xv; a4_5 += w4 * xv; a5_5 += w5 * xv; a6_5 += w6 * xv; a7_5 += w7 * xv; }
      { let xv = x[x6b + 2u * i + 1u]; a0_6 += w0 * xv; a1_6 += w1 * xv; a2_6 += w2 * xv; a3_6 += w3 * xv; a4_6 += w4 * xv; a5_6 += w5 * xv; a6_6 += w6 * xv; a7_6 += w7 * xv; }
      { let xv = x[x7b + 2u * i + 1u]; a0_7 += w0 * xv; a1_7 += w1 * xv; a2_7 += w2 * xv; a3_7 += w3 * xv; a4_7 += w4 * xv; a5_7 += w5 * xv; a6_7 += w6 * xv; a7_7 += w7 * xv; }
    }
  }
  for (var tt = 0u; tt < 8u; tt++) {
    let t = t0 + tt;
    if (t > tl) { break; }
    var s: array<f32, 8>;
    switch tt {
      case 0u: { s = array<f32, 8>(dot(a0_0, vec4<f32>(1.0)), dot(a1_0, vec4<f32>(1.0)), dot(a2_0, vec4<f32>(1.0)), dot(a3_0, vec4<f32>(1.0)), dot(a4_0, vec4<f32>(1.0)), dot(a5_0, vec4<f32>(1.0)), dot(a6_0, vec4<f32>(1.0)), dot(a7_0, vec4<f32>(1.0))); }
      case 1u: { s = array<f32, 8>(dot(a0_1, vec4<f32>(1.0)), dot(a1_1, vec4<f32>(1.0)), dot(a2_1, vec4<f32>(1.0)), dot(a3_1, vec4<f32>(1.0)), dot(a4_1, vec4<f32>(1.0)), dot(a5_1, vec4<f32>(1.0)), dot(a6_1, vec4<f32>(1.0)), dot(a7_1, vec4<f32>(1.0))); }
      case 2u: { s = array<f32, 8>(dot(a0_2, vec4<f32>(1.0)), dot(a1_2, vec4<f32>(1.0)), dot(a2_2, vec4<f32>(1.0)), dot(a3_2, vec4<f32>(1.0)), dot(a4_2, vec4<f32>(1.0)), dot(a5_2, vec4<f32>(1.0)), dot(a6_2, vec4<f32>(1.0)), dot(a7_2, vec4<f32>(1.0))); }
      case 3u: { s = array<f32, 8>(dot(a0_3, vec4<f32>(1.0)), dot(a1_3, vec4<f32>(1.0)), dot(a2_3, vec4<f32>(1.0)), dot(a3_3, vec4<f32>(1.0)), dot(a4_3, vec4<f32>(1.0)), dot(a5_3, vec4<f32>(1.0)), dot(a6_3, vec4<f32>(1.0)), dot(a7_3, vec4<f32>(1.0))); }
      case 4u: { s = array<f32, 8>(dot(a0_4, vec4<f32>(1.0)), dot(a1_4, vec4<f32>(1.0)), dot(a2_4, vec4<f32>(1.0)), dot(a3_4, vec4<f32>(1.0)), dot(a4_4, vec4<f32>(1.0)), dot(a5_4, vec4<f32>(1.0)), dot(a6_4, vec4<f32>(1.0)), dot(a7_4, vec4<f32>(1.0))); }
      case 5u: { s = array<f32, 8>(dot(a0_5, vec4<f32>(1.0)), dot(a1_5, vec4<f32>(1.0)), dot(a2_5, vec4<f32>(1.0)), dot(a3_5, vec4<f32>(1.0)), dot(a4_5, vec4<f32>(1.0)), dot(a5_5, vec4<f32>(1.0)), dot(a6_5, vec4<f32>(1.0)), dot(a7_5, vec4<f32>(1.0))); }
      case 6u: { s = array<f32, 8>(dot(a0_6, vec4<f32>(1.0)), dot(a1_6, vec4<f32>(1.0)), dot(a2_6, vec4<f32>(1.0)), dot(a3_6, vec4<f32>(1.0)), dot(a4_6, vec4<f32>(1.0)), dot(a5_6, vec4<f32>(1.0)), dot(a6_6, vec4<f32>(1.0)), dot(a7_6, vec4<f32>(1.0))); }
      default: { s = array<f32, 8>(dot(a0_7, vec4<f32>(1.0)), dot(a1_7, vec4<f32>(1.0)), dot(a2_7, vec4<f32>(1.0)), dot(a3_7, vec4<f32>(1.0)), dot(a4_7, vec4<f32>(1.0)), dot(a5_7, vec4<f32>(1.0)), dot(a6_7, vec4<f32>(1.0)), dot(a7_7, vec4<f32>(1.0))); }
    }
    let ob = t * p.out_stride + p.row_off + r;
    for (var j = 0u; j < 8u; j++) {
      if (r + j < p.n) {
        var v = s[j];
        if (p.has_bias != 0u) { v += bias[p.row_off + r + j]; }
        o[ob + j] = v;
      }
    }
  }
}
