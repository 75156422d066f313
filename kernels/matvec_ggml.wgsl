// Matvec, GGUF block weights kept exactly as in the file: out[t, rowOff + r] = dot(x[t, :], W[r, :]) (+ bias) for one
// row part. W: [n, k] as k / QK blocks of QB bytes per row, bound as array<u32>; the type's decode snippet
// (_ggml_<type>.wgsl, after _ggml_common.wgsl; lib/gpu prepends both) gives QK, QB, blk(o) (a block's header, read
// once per block and row) and dq8(header, o, g) = elements 8g..8g+7 of the block, decoded in registers. k % QK == 0. x: f32 [T, k] as vec4<f32>; token t =
// workgroup_id.z; row groups fold over workgroup_id.x/y. Each invocation computes RI = 4 consecutive rows, sharing each
// x load. Rows past n are clamped for loads and not stored. Bindings and Params are generated (lib/gpu/_wgsl.ts): w as array<u32>, x, bias; out; params.
override WG: u32 = 16;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = ((wid.x + wid.y * nwg.x) * WG + lid) * 4u;
  if (r >= params.n) { return; }
  let last = params.n - 1u;
  let nb = params.k / QK;
  let rb = nb * QB;
  let xb = wid.z * (params.k / 4u);
  let b0 = r * rb; var a0 = vec4<f32>(0.0);
  let b1 = min(r + 1u, last) * rb; var a1 = vec4<f32>(0.0);
  let b2 = min(r + 2u, last) * rb; var a2 = vec4<f32>(0.0);
  let b3 = min(r + 3u, last) * rb; var a3 = vec4<f32>(0.0);
  for (var b = 0u; b < nb; b++) {
    let bo = b * QB;
    let o0 = b0 + bo; let h0 = blk(o0);
    let o1 = b1 + bo; let h1 = blk(o1);
    let o2 = b2 + bo; let h2 = blk(o2);
    let o3 = b3 + bo; let h3 = blk(o3);
    for (var g = 0u; g < QK / 8u; g++) {
      let xo = xb + (b * QK + 8u * g) / 4u;
      let x0 = x[xo]; let x1 = x[xo + 1u];
      { let v = dq8(h0, o0, g); a0 += v[0] * x0 + v[1] * x1; }
      { let v = dq8(h1, o1, g); a1 += v[0] * x0 + v[1] * x1; }
      { let v = dq8(h2, o2, g); a2 += v[0] * x0 + v[1] * x1; }
      { let v = dq8(h3, o3, g); a3 += v[0] * x0 + v[1] * x1; }
    }
  }
  let ob = wid.z * params.outStride + params.rowOff + r;
  let s = array<f32, 4>(dot(a0, vec4<f32>(1.0)), dot(a1, vec4<f32>(1.0)), dot(a2, vec4<f32>(1.0)), dot(a3, vec4<f32>(1.0)));
  for (var j = 0u; j < 4u; j++) {
    if (r + j < params.n) {
      var v = s[j];
      if (params.hasBias != 0u) { v += bias[params.rowOff + r + j]; }
      store(ob + j, v);
    }
  }
}
