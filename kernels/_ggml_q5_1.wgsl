// Q5_1 (24 bytes / 32): d:f16, m:f16, qh:u32, qs:u8[16]; q as in Q5_0, value q*d + m. dq8(blk, g): elements 8g..8g+7.
const QK: u32 = 32u;
const QB: u32 = 24u;
fn dq8(blk: u32, g: u32) -> array<vec4<f32>, 2> {
  let d = h2f(b16(blk));
  let m = h2f(b16(blk + 2u));
  let qh = b32(blk + 4u) >> (8u * g);
  let o = blk + 8u + (g & 1u) * 8u;
  let sh = (g >> 1u) * 4u;
  let q0 = nib(b32(o) >> sh) | (bits4(qh, 0u) << vec4<u32>(4u));
  let q1 = nib(b32(o + 4u) >> sh) | (bits4(qh, 4u) << vec4<u32>(4u));
  return array<vec4<f32>, 2>(vec4<f32>(q0) * d + m, vec4<f32>(q1) * d + m);
}
