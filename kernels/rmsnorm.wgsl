// RMSNorm per row: out[r, i] = x[r, i] / sqrt(mean_j x[r, j]^2 + eps) * weight[i].
// x, out: f32 [rows, dim]; weight: f32 [dim]. Also Qwen3's per-head q/k norm (rows = T*nHeads, dim = headDim).
// One workgroup per row (linear workgroup index wid.x + wid.y * nwg.x); each thread sums the squares of a
// strided slice in f32, then a shared-memory tree reduction (WG must be a power of two).
// See rmsnorm_inplace.wgsl for out == x.

override WG: u32 = 256u;

struct Params {
  rows: u32,
  dim: u32,
  eps: f32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let row = wid.x + wid.y * nwg.x;
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
    out[base + i] = x[base + i] * inv * weight[i];
  }
}
