// SwiGLU activation in place: a[i] = silu(gate[i]) * up[i] where `a` is the output and one of the inputs:
// GATE_IN_A = 1: a = gate (in and out), b = up; GATE_IN_A = 0: a = up (in and out), b = gate. All f32 [n].

override WG: u32 = 256u;
override GATE_IN_A: u32 = 1u;

struct Params {
  n: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> b: array<f32>;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= params.n) {
    return;
  }
  var g = b[i];
  var u = a[i];
  if (GATE_IN_A == 1u) {
    g = a[i];
    u = b[i];
  }
  a[i] = g / (1.0 + exp(-g)) * u;
}
