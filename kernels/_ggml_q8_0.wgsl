// Q8_0 (34 bytes / 32): d:f16, qs:i8[32]; element j = d*qs[j]. dq8(blk, g): elements 8g..8g+7.
const QK: u32 = 32u;
const QB: u32 = 34u;
fn i8x4(v: u32) -> vec4<f32> {
  return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(v << 24u, v << 16u, v << 8u, v)) >> vec4<u32>(24u));
}
fn dq8(blk: u32, g: u32) -> array<vec4<f32>, 2> {
  let d = h2f(b16(blk));
  let o = blk + 2u + 8u * g;
  return array<vec4<f32>, 2>(d * i8x4(b32(o)), d * i8x4(b32(o + 4u)));
}
