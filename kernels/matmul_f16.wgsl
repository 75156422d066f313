// Matmul (prefill and small batches), f16 weights: out[t, row_off + r] = dot(x[t, :], W[r, :]) (+ bias) for one
// row part. W: f16 [n, k], k % 8 == 0, as vec4<u32> (decoded with integer ops: no shader-f16 needed).
// x: f32 [T, k] bound as vec4<f32>. Each invocation computes a 4-row x 4-token register tile: per step it loads
// the 4 rows' weights once (per-lane loads, dequantized in registers) and the 4 tokens' x (the same for every
// lane of the workgroup, so cheap), then does 16 vec4 multiply-adds. Row groups fold over workgroup_id.x/y,
// token groups of 4 are workgroup_id.z. Rows/tokens past the end are clamped for loads and not stored.
// Binding order: inputs, output, params.
struct Params { n: u32, k: u32, t: u32, row_off: u32, out_stride: u32, has_bias: u32, nb: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
// 4 halves (low 16 bits of each lane) -> f32, exact for normal/subnormal values (see h2f in matvec_q8.wgsl).
fn h4(h: vec4<u32>) -> vec4<f32> {
  return bitcast<vec4<f32>>(((h & vec4<u32>(0x7fffu)) << vec4<u32>(13u)) | ((h & vec4<u32>(0x8000u)) << vec4<u32>(16u)))
    * 5.192296858534828e33;
}
fn lo(v: vec4<u32>) -> vec4<f32> { return h4(vec4<u32>(v.x, v.x >> 16u, v.y, v.y >> 16u)); }
fn hi(v: vec4<u32>) -> vec4<f32> { return h4(vec4<u32>(v.z, v.z >> 16u, v.w, v.w >> 16u)); }
override WG: u32 = 16;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let r = ((wid.x + wid.y * nwg.x) * WG + lid) * 4u;
  if (r >= p.n) { return; }
  let last = p.n - 1u;
  let t0 = wid.z * 4u;
  let tl = p.t - 1u;
  let k4 = p.k / 4u;
  let x0b = t0 * k4;
  let x1b = min(t0 + 1u, tl) * k4;
  let x2b = min(t0 + 2u, tl) * k4;
  let x3b = min(t0 + 3u, tl) * k4;
  let k8 = p.k / 8u;
  let b0 = r * k8;
  let b1 = min(r + 1u, last) * k8;
  let b2 = min(r + 2u, last) * k8;
  let b3 = min(r + 3u, last) * k8;
  var a00 = vec4<f32>(0.0);
  var a01 = vec4<f32>(0.0);
  var a02 = vec4<f32>(0.0);
  var a03 = vec4<f32>(0.0);
  var a10 = vec4<f32>(0.0);
  var a11 = vec4<f32>(0.0);
  var a12 = vec4<f32>(0.0);
  var a13 = vec4<f32>(0.0);
  var a20 = vec4<f32>(0.0);
  var a21 = vec4<f32>(0.0);
  var a22 = vec4<f32>(0.0);
  var a23 = vec4<f32>(0.0);
  var a30 = vec4<f32>(0.0);
  var a31 = vec4<f32>(0.0);
  var a32 = vec4<f32>(0.0);
  var a33 = vec4<f32>(0.0);
  for (var i = 0u; i < k8; i++) {
    let v0 = w[b0 + i];
    let v1 = w[b1 + i];
    let v2 = w[b2 + i];
    let v3 = w[b3 + i];
    {
    let w0 = lo(v0);
    let w1 = lo(v1);
    let w2 = lo(v2);
    let w3 = lo(v3);
    { let xv = x[x0b + 2u * i]; a00 += w0 * xv; a10 += w1 * xv; a20 += w2 * xv; a30 += w3 * xv; }
    { let xv = x[x1b + 2u * i]; a01 += w0 * xv; a11 += w1 * xv; a21 += w2 * xv; a31 += w3 * xv; }
    { let xv = x[x2b + 2u * i]; a02 += w0 * xv; a12 += w1 * xv; a22 += w2 * xv; a32 += w3 * xv; }
    { let xv = x[x3b + 2u * i]; a03 += w0 * xv; a13 += w1 * xv; a23 += w2 * xv; a33 += w3 * xv; }
    }
    {
    let w0 = hi(v0);
    let w1 = hi(v1);
    let w2 = hi(v2);
    let w3 = hi(v3);
    { let xv = x[x0b + 2u * i + 1u]; a00 += w0 * xv; a10 += w1 * xv; a20 += w2 * xv; a30 += w3 * xv; }
    { let xv = x[x1b + 2u * i + 1u]; a01 += w0 * xv; a11 += w1 * xv; a21 += w2 * xv; a31 += w3 * xv; }
    { let xv = x[x2b + 2u * i + 1u]; a02 += w0 * xv; a12 += w1 * xv; a22 += w2 * xv; a32 += w3 * xv; }
    { let xv = x[x3b + 2u * i + 1u]; a03 += w0 * xv; a13 += w1 * xv; a23 += w2 * xv; a33 += w3 * xv; }
    }
  }
  for (var tt = 0u; tt < 4u; tt++) {
    let t = t0 + tt;
    if (t > tl) { break; }
    var s: vec4<f32>;
    switch tt {
      case 0u: { s = vec4<f32>(dot(a00, vec4<f32>(1.0)), dot(a10, vec4<f32>(1.0)), dot(a20, vec4<f32>(1.0)), dot(a30, vec4<f32>(1.0))); }
      case 1u: { s = vec4<f32>(dot(a01, vec4<f32>(1.0)), dot(a11, vec4<f32>(1.0)), dot(a21, vec4<f32>(1.0)), dot(a31, vec4<f32>(1.0))); }
      case 2u: { s = vec4<f32>(dot(a02, vec4<f32>(1.0)), dot(a12, vec4<f32>(1.0)), dot(a22, vec4<f32>(1.0)), dot(a32, vec4<f32>(1.0))); }
      default: { s = vec4<f32>(dot(a03, vec4<f32>(1.0)), dot(a13, vec4<f32>(1.0)), dot(a23, vec4<f32>(1.0)), dot(a33, vec4<f32>(1.0))); }
    }
    let ob = t * p.out_stride + p.row_off + r;
    for (var j = 0u; j < 4u; j++) {
      if (r + j < p.n) {
        var v = s[j];
        if (p.has_bias != 0u) { v += bias[p.row_off + r + j]; }
        o[ob + j] = v;
      }
    }
  }
}
