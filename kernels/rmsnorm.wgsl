// RMSNorm per row: out[r, i] = x[r, i] / sqrt(mean_j x[r, j]^2 + eps) * weight[i].
// x, out: f32 [rows, dim]; weight: f32 [dim]. Also Qwen3's per-head q/k norm (rows = T*nHeads, dim = headDim).
// One workgroup per row (linear workgroup index wid.x + wid.y * nwg.x); each thread sums the squares of a
// strided slice in f32, then a shared-memory tree reduction (WG must be a power of two).
// Written through store(): in place (out == x, e.g. Qwen3 q/k norm), x is the output binding.

override WG: u32 = 256u;

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let row = wg_index(wid, nwg);
  if (row >= params.rows) {
    return;
  }
  let dim = params.dim;
  let base = row * dim;
  var ss = 0.0;
  for (var i = lid.x; i < dim; i += WG) {
    let v = x[base + i];
    ss += v * v;
  }
  red[lid.x] = ss;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s) {
      red[lid.x] += red[lid.x + s];
    }
    workgroupBarrier();
  }
  let inv = inverseSqrt(red[0] / f32(dim) + params.eps);
  for (var i = lid.x; i < dim; i += WG) {
    store(base + i, x[base + i] * inv * weight[i]);
  }
}
