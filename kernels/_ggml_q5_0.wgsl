// Q5_0 (22 bytes / 32): d:f16, qh:u32, qs:u8[16]; element e has its 5th bit at bit e of qh, its low 4 bits in the low
// (e < 16) or high (e >= 16) nibble of qs[e % 16]; value d*(q - 16). dq8(blk, g): elements 8g..8g+7.
const QK: u32 = 32u;
const QB: u32 = 22u;
fn dq8(blk: u32, g: u32) -> array<vec4<f32>, 2> {
  let d = h2f(b16(blk));
  let qh = b32(blk + 2u) >> (8u * g);
  let o = blk + 6u + (g & 1u) * 8u;
  let sh = (g >> 1u) * 4u;
  let q0 = nib(b32(o) >> sh) | (bits4(qh, 0u) << vec4<u32>(4u));
  let q1 = nib(b32(o + 4u) >> sh) | (bits4(qh, 4u) << vec4<u32>(4u));
  return array<vec4<f32>, 2>(d * (vec4<f32>(q0) - 16.0), d * (vec4<f32>(q1) - 16.0));
}
