// Elementwise ops over n values: out[i] = value(i), value() from the op's body (add.wgsl, silu_mul.wgsl); written
// through store(), so the in-place variant (the output bound as one of the inputs) is the same code.
// One thread per element; linear index over a possibly 2-D dispatch.
override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= params.n) {
    return;
  }
  store(i, value(i));
}
