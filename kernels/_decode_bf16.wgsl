// Decode of 8 packed bf16 weights (a vec4<u32>) into two vec4<f32>: f32 bits = bf16 << 16. Prepended to
// matvec_half.wgsl and matmul_half.wgsl for bf16 weights (lib/gpu/_matmul.ts); lo() gives elements 0..3, hi() 4..7.
// @section block: 8 packed values (vec4<u32>) for matvec_half / matmul_half.
fn lo(v: vec4<u32>) -> vec4<f32> {
  return bitcast<vec4<f32>>(vec4<u32>(v.x << 16u, v.x & 0xffff0000u, v.y << 16u, v.y & 0xffff0000u));
}
fn hi(v: vec4<u32>) -> vec4<f32> {
  return bitcast<vec4<f32>>(vec4<u32>(v.z << 16u, v.z & 0xffff0000u, v.w << 16u, v.w & 0xffff0000u));
}
// @section scalar: element c of row r for matmul_generic (w: array<u32>).
fn weight_at(r: u32, c: u32) -> f32 { return bitcast<f32>(half_at(r * p.k + c) << 16u); }
