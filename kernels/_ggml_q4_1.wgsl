// Q4_1 (20 bytes / 32): d:f16, m:f16, qs:u8[16]; element j = low nibble of qs[j] * d + m, j+16 = high nibble * d + m.
// dq8(blk, g): elements 8g..8g+7 of the block at byte blk.
const QK: u32 = 32u;
const QB: u32 = 20u;
fn dq8(blk: u32, g: u32) -> array<vec4<f32>, 2> {
  let d = h2f(b16(blk));
  let m = h2f(b16(blk + 2u));
  let o = blk + 4u + (g & 1u) * 8u;
  let sh = (g >> 1u) * 4u;
  return array<vec4<f32>, 2>(vec4<f32>(nib(b32(o) >> sh)) * d + m, vec4<f32>(nib(b32(o + 4u) >> sh)) * d + m);
}
