// Decode of 8 packed f16 weights (a vec4<u32>) into two vec4<f32>, with integer ops and one multiply by 2^112:
// exact for normal and subnormal halves, no shader-f16 or unpack2x16float needed. Prepended to matvec_half.wgsl and
// matmul_half.wgsl for f16 weights (lib/gpu/_matmul.ts); lo() gives elements 0..3, hi() elements 4..7.
// @section block: 8 packed values (vec4<u32>) for matvec_half / matmul_half.
fn h4(h: vec4<u32>) -> vec4<f32> {
  return bitcast<vec4<f32>>(((h & vec4<u32>(0x7fffu)) << vec4<u32>(13u)) | ((h & vec4<u32>(0x8000u)) << vec4<u32>(16u)))
    * 5.192296858534828e33;
}
fn lo(v: vec4<u32>) -> vec4<f32> { return h4(vec4<u32>(v.x, v.x >> 16u, v.y, v.y >> 16u)); }
fn hi(v: vec4<u32>) -> vec4<f32> { return h4(vec4<u32>(v.z, v.z >> 16u, v.w, v.w >> 16u)); }
// @section scalar: element c of row r for matmul_generic (w: array<u32>).
fn weight_at(r: u32, c: u32) -> f32 { return unpack2x16float(half_at(r * p.k + c)).x; }
