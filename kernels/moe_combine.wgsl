// Mixture-of-experts combine: acc[t, i] += c(t) * y[t, i] over T rows of D, where c(t) = coef[t * stride + col]
// (a router weight: route [T, E], col = the expert) or, when params.sigmoid == 1, sigmoid(coef[t * stride + col])
// (Qwen2-MoE's shared-expert gate [T, 1]). y, acc: f32 [T, D]. One thread per element of acc; a token whose
// c(t) is 0 (not routed to this expert) adds nothing.

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= params.n) {
    return;
  }
  let t = i / params.D;
  var c = coef[t * params.stride + params.col];
  if (params.sigmoid == 1u) {
    c = 1.0 / (1.0 + exp(-c));
  }
  acc[i] = acc[i] + c * y[i];
}
