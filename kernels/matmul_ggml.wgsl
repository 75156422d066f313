// Matmul (prefill), GGUF block weights kept exactly as in the file: out[t, rowOff + r] = dot(x[t, :], W[r, :])
// (+ bias) for T tokens and one row part. W as in matvec_ggml.wgsl (the type's _ggml_<type>.wgsl snippet, after
// _ggml_common.wgsl, gives QK, QB, Blk, blk and dq8). x: f32 [T, k] as vec4<f32>. Each invocation computes a 4 x 4
// register tile (4 rows from workgroup_id.x/y, 4 tokens from workgroup_id.z): each decoded group of 8 weights serves
// 4 tokens, each x load 4 rows; written out by hand (lavapipe spills loops over local arrays). Rows and tokens past n
// and T are clamped for loads and not stored. Bindings and Params are generated (lib/gpu/_wgsl.ts): w as array<u32>, x, bias; out; params.
override WG: u32 = 16;
fn put(i: u32, t: u32, a: vec4<f32>) {
  if (i < params.n && t < params.t) {
    var v = dot(a, vec4<f32>(1.0));
    if (params.hasBias != 0u) { v += bias[params.rowOff + i]; }
    store(t * params.outStride + params.rowOff + i, v);
  }
}
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = ((wid.x + wid.y * nwg.x) * WG + lid) * 4u;
  if (r >= params.n) { return; }
  let t0 = wid.z * 4u;
  let last = params.n - 1u;
  let tl = params.t - 1u;
  let nb = params.k / QK;
  let rb = nb * QB;
  let k4 = params.k / 4u;
  let b0 = r * rb;
  let b1 = min(r + 1u, last) * rb;
  let b2 = min(r + 2u, last) * rb;
  let b3 = min(r + 3u, last) * rb;
  let s0 = t0 * k4;
  let s1 = min(t0 + 1u, tl) * k4;
  let s2 = min(t0 + 2u, tl) * k4;
  let s3 = min(t0 + 3u, tl) * k4;
  var a00 = vec4<f32>(0.0); var a01 = vec4<f32>(0.0); var a02 = vec4<f32>(0.0); var a03 = vec4<f32>(0.0);
  var a10 = vec4<f32>(0.0); var a11 = vec4<f32>(0.0); var a12 = vec4<f32>(0.0); var a13 = vec4<f32>(0.0);
  var a20 = vec4<f32>(0.0); var a21 = vec4<f32>(0.0); var a22 = vec4<f32>(0.0); var a23 = vec4<f32>(0.0);
  var a30 = vec4<f32>(0.0); var a31 = vec4<f32>(0.0); var a32 = vec4<f32>(0.0); var a33 = vec4<f32>(0.0);
  for (var b = 0u; b < nb; b++) {
    let bo = b * QB;
    let o0 = b0 + bo; let h0 = blk(o0);
    let o1 = b1 + bo; let h1 = blk(o1);
    let o2 = b2 + bo; let h2 = blk(o2);
    let o3 = b3 + bo; let h3 = blk(o3);
    for (var g = 0u; g < QK / 8u; g++) {
      let xo = (b * QK + 8u * g) / 4u;
      let x00 = x[s0 + xo]; let x01 = x[s0 + xo + 1u];
      let x10 = x[s1 + xo]; let x11 = x[s1 + xo + 1u];
      let x20 = x[s2 + xo]; let x21 = x[s2 + xo + 1u];
      let x30 = x[s3 + xo]; let x31 = x[s3 + xo + 1u];
      { let v = dq8(h0, o0, g);
        a00 += v[0] * x00 + v[1] * x01; a01 += v[0] * x10 + v[1] * x11; a02 += v[0] * x20 + v[1] * x21; a03 += v[0] * x30 + v[1] * x31; }
      { let v = dq8(h1, o1, g);
        a10 += v[0] * x00 + v[1] * x01; a11 += v[0] * x10 + v[1] * x11; a12 += v[0] * x20 + v[1] * x21; a13 += v[0] * x30 + v[1] * x31; }
      { let v = dq8(h2, o2, g);
        a20 += v[0] * x00 + v[1] * x01; a21 += v[0] * x10 + v[1] * x11; a22 += v[0] * x20 + v[1] * x21; a23 += v[0] * x30 + v[1] * x31; }
      { let v = dq8(h3, o3, g);
        a30 += v[0] * x00 + v[1] * x01; a31 += v[0] * x10 + v[1] * x11; a32 += v[0] * x20 + v[1] * x21; a33 += v[0] * x30 + v[1] * x31; }
    }
  }
  put(r + 0u, t0 + 0u, a00); put(r + 0u, t0 + 1u, a01); put(r + 0u, t0 + 2u, a02); put(r + 0u, t0 + 3u, a03);
  put(r + 1u, t0 + 0u, a10); put(r + 1u, t0 + 1u, a11); put(r + 1u, t0 + 2u, a12); put(r + 1u, t0 + 3u, a13);
  put(r + 2u, t0 + 0u, a20); put(r + 2u, t0 + 1u, a21); put(r + 2u, t0 + 2u, a22); put(r + 2u, t0 + 3u, a23);
  put(r + 3u, t0 + 0u, a30); put(r + 3u, t0 + 1u, a31); put(r + 3u, t0 + 2u, a32); put(r + 3u, t0 + 3u, a33);
}
