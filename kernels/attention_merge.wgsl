// Attention pass 3 of 3 (only when positions were split): combines the split partials.
//   part: acc [rows * nSplit, HD] (unnormalised), then at float offset mlOffset (m, l, -, -) [rows * nSplit, 4]
//   out:  rows r = (t - t0) * nHeads + h of [T, nHeads * HD], written at row t0 * nHeads + r
//   M = max_s m_s,  out = Σ_s acc_s e^(m_s - M) / Σ_s l_s e^(m_s - M)
// One workgroup per row (linear index wid.x + wid.y * nwg.x), threads over the head dimension.

override HD: u32 = 64u;
const WG: u32 = 64u;

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
  let ns = params.nSplit;
  let ml = params.mlOffset + row * ns * 4u;
  var mx = part[ml];
  for (var s = 1u; s < ns; s++) {
    mx = max(mx, part[ml + s * 4u]);
  }
  var l = 0.0;
  for (var s = 0u; s < ns; s++) {
    l += part[ml + s * 4u + 1u] * exp(part[ml + s * 4u] - mx);
  }
  let inv = 1.0 / l;
  for (var d = lid.x; d < HD; d += WG) {
    var acc = 0.0;
    for (var s = 0u; s < ns; s++) {
      acc += part[(row * ns + s) * HD + d] * exp(part[ml + s * 4u] - mx);
    }
    out[(params.rowOffset + row) * HD + d] = acc * inv;
  }
}
