// SwiGLU activation: out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)); all f32 [n]. Main loop:
// _elementwise.wgsl. In place, gate or up is the output binding.
fn value(i: u32) -> f32 {
  let g = gate[i];
  return g / (1.0 + exp(-g)) * up[i];
}
