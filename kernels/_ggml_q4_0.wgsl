// Q4_0 (18 bytes / 32): d:f16, qs:u8[16]; element j = d*(low nibble of qs[j] - 8), j+16 = d*(high nibble - 8).
const QK: u32 = 32u;
const QB: u32 = 18u;
struct Blk { d: f32 }
fn blk(o: u32) -> Blk { return Blk(h2f(b16(o))); }
fn dq8(h: Blk, o: u32, g: u32) -> array<vec4<f32>, 2> {
  let q = o + 2u + (g & 1u) * 8u;
  let sh = (g >> 1u) * 4u;
  return array<vec4<f32>, 2>(h.d * (vec4<f32>(nib(b32(q) >> sh)) - 8.0), h.d * (vec4<f32>(nib(b32(q + 4u) >> sh)) - 8.0));
}
