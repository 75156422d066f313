// Matmul (prefill and small batches), block-scaled weights (q8, q4: blocks of 32 along a row, one f16 scale each):
// out[t, rowOff + r] = dot(x[t, :], W[r, :]) (+ bias) for one row part; k % 32 == 0. W bound as vec4<u32>; per
// block, load_block(i) and dec(blk, j) (values 4j..4j+3 of the block, j < 8) come from the encoding's
// _decode_<name>.wgsl, scale(i) from _scales.wgsl. x: f32 [T, k] bound as vec4<f32>. Each invocation computes a
// ROWS x TOKENS register tile (r x t): per block it loads the rows' weights once (dequantized in registers) and
// each token's x (the same for every lane of the workgroup, so cheap), sums the block's products unscaled, then
// adds them times the block scale. Row groups fold over workgroup_id.x/y, token groups are workgroup_id.z.
// Rows/tokens past the end are clamped for loads and not stored.
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
  let x#tb = min(t0 + #tu, tl) * k4;
  let nb = params.nb;
  let r#r = min(r + #ru, last) * nb;
  var a#r#t = vec4<f32>(0.0);
  for (var b = 0u; b < nb; b++) {
    let i#r = r#r + b;
    let u#r = load_block(i#r); let d#r = scale(i#r);
    var p#r#t = vec4<f32>(0.0);
    //@each j
    {
      let g#r = dec(u#r, #ju);
      { let xv = x[x#tb + 8u * b + #ju]; {%p#r#t += g#r * xv;%} }
    }
    //@end
    a#r#t += d#r * p#r#t;
  }
  for (var tt = 0u; tt < {{TOKENS}}u; tt++) {
    let t = t0 + tt;
    if (t > tl) { break; }
    var s: array<f32, {{ROWS}}>;
    switch tt {
      case #tu: { s = array<f32, {{ROWS}}>({%dot(a#r#t, vec4<f32>(1.0))%}); }
      default: {}
    }
    let ob = t * params.outStride + params.rowOff + r;
    for (var j = 0u; j < {{ROWS}}u; j++) { emit(r, j, ob, s[j]); }
  }
}
