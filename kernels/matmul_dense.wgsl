// Matmul (prefill and small batches), plain float weights (f32, f16, bf16): out[t, rowOff + r] = dot(x[t, :], W[r, :])
// (+ bias) for one row part. W: [n, k] row-major, k % 8 == 0, bound as vec4<u32>; load_unit(i) / dec_unit(v, j) from
// the encoding's _decode_<name>.wgsl decode word i (J = 16 bytes / value size groups of 4 values, j < J). x: f32 [T, k] as
// vec4<f32>. Each invocation computes a ROWS x TOKENS register tile (r x t): per step it loads the rows' weights
// once (per-lane loads, decoded in registers) and each token's x (the same for every lane of the workgroup, so
// cheap), then does ROWS * TOKENS vec4 multiply-adds. Row groups fold over workgroup_id.x/y, token groups are
// workgroup_id.z. Rows/tokens past the end are clamped for loads and not stored.
override WG: u32 = 16;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let r = (wg_index(wid, nwg) * WG + lid) * {{ROWS}}u;
  if (r >= params.n) { return; }
  let last = params.n - 1u;
  let t0 = wid.z * {{TOKENS}}u;
  let tl = params.t - 1u;
  let k4 = params.k / 4u;
  let kU = params.k / (4u * {{J}}u);
  let x#tb = min(t0 + #tu, tl) * k4;
  let b#r = min(r + #ru, last) * kU;
  var a#r_#t = vec4<f32>(0.0);
  for (var i = 0u; i < kU; i++) {
    let v#r = load_unit(b#r + i);
    //@each j
    {
      let w#r = dec_unit(v#r, #ju);
      { let xv = x[x#tb + {{J}}u * i + #ju]; {%a#r_#t += w#r * xv;%} }
    }
    //@end
  }
  for (var tt = 0u; tt < {{TOKENS}}u; tt++) {
    let t = t0 + tt;
    if (t > tl) { break; }
    var s: array<f32, {{ROWS}}>;
    switch tt {
      case #tu: { s = array<f32, {{ROWS}}>({%dot(a#r_#t, vec4<f32>(1.0))%}); }
      default: {}
    }
    let ob = t * params.outStride + params.rowOff + r;
    for (var j = 0u; j < {{ROWS}}u; j++) { emit(r, j, ob, s[j]); }
  }
}
