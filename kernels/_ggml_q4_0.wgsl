// Q4_0 (18 bytes / 32): d:f16, qs:u8[16]; element j = d*(low nibble of qs[j] - 8), j+16 = d*(high nibble - 8).
// dq8(blk, g): elements 8g..8g+7 of the block at byte blk.
const QK: u32 = 32u;
const QB: u32 = 18u;
fn dq8(blk: u32, g: u32) -> array<vec4<f32>, 2> {
  let d = h2f(b16(blk));
  let o = blk + 2u + (g & 1u) * 8u;
  let sh = (g >> 1u) * 4u;
  return array<vec4<f32>, 2>(d * (vec4<f32>(nib(b32(o) >> sh)) - 8.0), d * (vec4<f32>(nib(b32(o + 4u) >> sh)) - 8.0));
}
