// Decode of f32 weights (4 bytes per value, row-major [n, k]), bound as u32 words.
// @section block: group i of 8 values of a row (two vec4<u32>) for matvec_dense; word i (4 values) for matmul_dense.
fn load8(i: u32) -> array<vec4<u32>, 2> { return array<vec4<u32>, 2>(w[2u * i], w[2u * i + 1u]); }
fn dec8(v: array<vec4<u32>, 2>, j: u32) -> vec4<f32> { return bitcast<vec4<f32>>(v[j]); }
fn load_unit(i: u32) -> vec4<u32> { return w[i]; }
fn dec_unit(v: vec4<u32>, j: u32) -> vec4<f32> { return bitcast<vec4<f32>>(v); }
// @section scalar: element c of row r for matmul_generic (w: array<u32>).
fn weight_at(r: u32, c: u32) -> f32 { return bitcast<f32>(w[r * params.k + c]); }
