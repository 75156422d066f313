// Matmul (prefill), GGUF block weights kept exactly as in the file: out[t, row_off + r] = dot(x[t, :], W[r, :])
// (+ bias) for T tokens and one row part. W as in matvec_ggml.wgsl (the type's _ggml_<type>.wgsl snippet, after
// _ggml_common.wgsl, gives QK, QB, Blk, blk and dq8). x: f32 [T, k] as vec4<f32>. Each invocation computes a 4 x 4 register tile
// (4 rows from workgroup_id.x/y, 4 tokens from workgroup_id.z): each decoded group of 8 weights serves 4 tokens, each
// x load 4 rows. Rows and tokens past n and T are clamped for loads and not stored. Binding order: inputs, output,
// params.
struct Params { n: u32, k: u32, t: u32, row_off: u32, out_stride: u32, has_bias: u32, nb: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
override WG: u32 = 16;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = ((wid.x + wid.y * nwg.x) * WG + lid) * 4u;
  if (r >= p.n) { return; }
  let t0 = wid.z * 4u;
  let last = p.n - 1u;
  let tl = p.t - 1u;
  let nb = p.k / QK;
  let rb = nb * QB;
  let k4 = p.k / 4u;
  let rows = array<u32, 4>(r * rb, min(r + 1u, last) * rb, min(r + 2u, last) * rb, min(r + 3u, last) * rb);
  let xs = array<u32, 4>(t0 * k4, min(t0 + 1u, tl) * k4, min(t0 + 2u, tl) * k4, min(t0 + 3u, tl) * k4);
  var acc: array<vec4<f32>, 16>; // acc[4 * row + token]
  for (var b = 0u; b < nb; b++) {
    let bo = b * QB;
    var hs: array<Blk, 4>;
    for (var i = 0u; i < 4u; i++) { hs[i] = blk(rows[i] + bo); }
    for (var g = 0u; g < QK / 8u; g++) {
      let xo = (b * QK + 8u * g) / 4u;
      var xl: array<vec4<f32>, 8>;
      for (var t = 0u; t < 4u; t++) { xl[2u * t] = x[xs[t] + xo]; xl[2u * t + 1u] = x[xs[t] + xo + 1u]; }
      for (var i = 0u; i < 4u; i++) {
        let v = dq8(hs[i], rows[i] + bo, g);
        for (var t = 0u; t < 4u; t++) { acc[4u * i + t] += v[0] * xl[2u * t] + v[1] * xl[2u * t + 1u]; }
      }
    }
  }
  for (var i = 0u; i < 4u; i++) {
    for (var t = 0u; t < 4u; t++) {
      if (r + i < p.n && t0 + t < p.t) {
        var v = dot(acc[4u * i + t], vec4<f32>(1.0));
        if (p.has_bias != 0u) { v += bias[p.row_off + r + i]; }
        o[(t0 + t) * p.out_stride + p.row_off + r + i] = v;
      }
    }
  }
}
