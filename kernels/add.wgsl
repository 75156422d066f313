// Residual add: out[i] = x[i] + y[i]; all f32 [n]. Main loop: _elementwise.wgsl. In place, x is the output binding.
fn value(i: u32) -> f32 { return x[i] + y[i]; }
