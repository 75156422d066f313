// Decode of bf16 weights (2 bytes per value, row-major [n, k], two per u32 word, low half first): f32 bits =
// bf16 << 16.
// @section block: word i = 8 values of a row (one vec4<u32>): load8/dec8 for matvec_dense, load_unit/dec_unit
// (the same) for matmul_dense.
fn load_unit(i: u32) -> vec4<u32> { return w[i]; }
fn load8(i: u32) -> vec4<u32> { return w[i]; }
fn dec_unit(v: vec4<u32>, j: u32) -> vec4<f32> {
  if (j == 0u) { return bitcast<vec4<f32>>(vec4<u32>(v.x << 16u, v.x & 0xffff0000u, v.y << 16u, v.y & 0xffff0000u)); }
  return bitcast<vec4<f32>>(vec4<u32>(v.z << 16u, v.z & 0xffff0000u, v.w << 16u, v.w & 0xffff0000u));
}
fn dec8(v: vec4<u32>, j: u32) -> vec4<f32> { return dec_unit(v, j); }
// @section scalar: element c of row r for matmul_generic (w: array<u32>).
fn weight_at(r: u32, c: u32) -> f32 { return bitcast<f32>(half_at(r * params.k + c) << 16u); }
