// Mixture-of-experts scatter: one expert ran over the n rows gathered for it (the tokens that chose it);
// acc[idx[j], i] += coef[j] * y[j, i] for j < n, i < D. sel holds n pairs (idx u32, bitcast<u32>(coef f32)).
// y: f32 [n, D]; acc: f32 [T, D]. Each token appears at most once per expert, so no two threads add to the
// same element. One thread per element of y.

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = gid.x + gid.y * nwg.x * WG;
  if (k >= params.n * params.D) {
    return;
  }
  let j = k / params.D;
  let i = k - j * params.D;
  let t = sel[2u * j];
  let c = bitcast<f32>(sel[2u * j + 1u]);
  let o = t * params.D + i;
  acc[o] = acc[o] + c * y[k];
}
