// Matmul fallback for any encoding and any k (no alignment needed): out[t, rowOff + r] = dot(x[t, :], W[r, :])
// (+ bias) for one row part; one invocation per (row, token), scalar loads. Used when k is not a multiple of the
// encoding's gpu.align. W as u32 words in the shard layout; the element decode weight_at(r, c) is the `scalar`
// section of the encoding's _decode_<name>.wgsl (it may use half_at below, and scale() from _scales.wgsl).
// Rows fold over workgroup_id.x/y, token = z.
override WG: u32 = 64;

fn half_at(idx: u32) -> u32 {
  return (w[idx >> 1u] >> (16u * (idx & 1u))) & 0xffffu;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let r = wg_index(wid, nwg) * WG + lid;
  if (r >= params.n) { return; }
  _ = &sc; // bound for every encoding (the fixed binding order), read only by those with scales
  let t = wid.z;
  let xb = t * params.k;
  var acc = 0.0;
  for (var k = 0u; k < params.k; k++) {
    acc += weight_at(r, k) * x[xb + k];
  }
  emit(r, 0u, t * params.outStride + params.rowOff + r, acc);
}
