// Q8_0 (34 bytes / 32): d:f16, qs:i8[32]; element j = d*qs[j].
const QK: u32 = 32u;
const QB: u32 = 34u;
struct Blk { d: f32 }
fn blk(o: u32) -> Blk { return Blk(h2f(b16(o))); }
fn i8x4(v: u32) -> vec4<f32> {
  return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(v << 24u, v << 16u, v << 8u, v)) >> vec4<u32>(24u));
}
fn dq8(h: Blk, o: u32, g: u32) -> array<vec4<f32>, 2> {
  let q = o + 2u + 8u * g;
  return array<vec4<f32>, 2>(h.d * i8x4(b32(q)), h.d * i8x4(b32(q + 4u)));
}
