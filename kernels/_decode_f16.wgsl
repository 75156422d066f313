// Decode of f16 weights (2 bytes per value, row-major [n, k], two per u32 word, low half first), with integer ops
// and one multiply by 2^112: exact for normal and subnormal halves, no shader-f16 or unpack2x16float needed.
// @section block: word i = 8 values of a row (one vec4<u32>): load8/dec8 for matvec_dense, load_unit/dec_unit
// (the same) for matmul_dense.
fn h4(h: vec4<u32>) -> vec4<f32> {
  return bitcast<vec4<f32>>(((h & vec4<u32>(0x7fffu)) << vec4<u32>(13u)) | ((h & vec4<u32>(0x8000u)) << vec4<u32>(16u)))
    * 5.192296858534828e33;
}
fn load_unit(i: u32) -> vec4<u32> { return w[i]; }
fn load8(i: u32) -> vec4<u32> { return w[i]; }
fn dec_unit(v: vec4<u32>, j: u32) -> vec4<f32> {
  if (j == 0u) { return h4(vec4<u32>(v.x, v.x >> 16u, v.y, v.y >> 16u)); }
  return h4(vec4<u32>(v.z, v.z >> 16u, v.w, v.w >> 16u));
}
fn dec8(v: vec4<u32>, j: u32) -> vec4<f32> { return dec_unit(v, j); }
// @section scalar: element c of row r for matmul_generic (w: array<u32>).
fn weight_at(r: u32, c: u32) -> f32 { return h2f(half_at(r * params.k + c)); }
// @section block_gpu: load_unit / dec_unit for the GPU kernel family: unpack2x16float (core WGSL, no shader-f16; one
// conversion per pair on GPUs, slow on lavapipe, hence not in the block section). Exact like h4.
fn load_unit(i: u32) -> vec4<u32> { return w[i]; }
fn dec_unit(v: vec4<u32>, j: u32) -> vec4<f32> {
  if (j == 0u) { return vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y)); }
  return vec4<f32>(unpack2x16float(v.z), unpack2x16float(v.w));
}
