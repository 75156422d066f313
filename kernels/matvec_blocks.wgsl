// Matvec, block-scaled weights (q8, q4: blocks of 32 along a row, one f16 scale each): out[t, rowOff + r] =
// dot(x[t, :], W[r, :]) (+ bias[rowOff + r]) for one row part; k % 32 == 0. W bound as vec4<u32>, scales as sc
// (_scales.wgsl); block_dot(i, xc, xs8) from the encoding's _decode_<name>.wgsl is the unscaled dot of block i with
// the block's 32 x values xc (xs8 = 8 * their sum, for encodings with an offset of 8). x: f32 [T, k] as vec4<f32>;
// token = workgroup_id.z.
// Each invocation computes ROWS consecutive rows (r): per block it loads the 32 x values once and reuses them for
// every row; per-row scalar accumulators; no barriers, no workgroup memory. Rows past n are clamped for loads, not
// stored.
override WG: u32 = 8;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = (wg_index(wid, nwg) * WG + lid) * {{ROWS}}u;
  if (r >= params.n) { return; }
  let last = params.n - 1u;
  let nb = params.nb;
  let xb = wid.z * (params.k / 4u);
  let r#r = min(r + #ru, last) * nb; var a#r = 0.0;
  for (var b = 0u; b < nb; b++) {
    let xo = xb + 8u * b;
    let xc = array<vec4<f32>, 8>({%x[xo + #ju]%});
    let xs8 = 8.0 * dot(xc[0] + xc[1] + xc[2] + xc[3] + xc[4] + xc[5] + xc[6] + xc[7], vec4<f32>(1.0));
    a#r += scale(r#r + b) * block_dot(r#r + b, xc, xs8);
  }
  let ob = wid.z * params.outStride + params.rowOff + r;
  emit(r, #ru, ob, a#r);
}
