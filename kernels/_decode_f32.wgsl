// Decode of f32 weights (4 bytes per value, row-major [n, k]).
// @section scalar: element c of row r for matmul_generic (w: array<u32>).
fn weight_at(r: u32, c: u32) -> f32 { return bitcast<f32>(w[r * p.k + c]); }
