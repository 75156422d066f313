// Q4_K (144 bytes / 256): d:f16, dmin:f16 @2, scales:u8[12] @4 (8 six-bit scales and mins), qs:u8[128] @16.
// Chunk c (0..3) covers elements 64c..64c+63: 64c + l (l < 32) is the low nibble of qs[32c + l] (sub-block 2c),
// 64c + 32 + l the high nibble (sub-block 2c + 1); value (d*sc)*q - dmin*m. kq_scale_min(s, k) unpacks sub-block k's
// scale and min (shared with Q5_K). dq8(blk, g): elements 8g..8g+7.
const QK: u32 = 256u;
const QB: u32 = 144u;
fn kq_scale_min(s: u32, k: u32) -> vec2<f32> {
  if (k < 4u) { return vec2<f32>(f32(b8(s + k) & 63u), f32(b8(s + k + 4u) & 63u)); }
  let e = b8(s + k + 4u);
  return vec2<f32>(f32((e & 0xfu) | ((b8(s + k - 4u) >> 6u) << 4u)), f32((e >> 4u) | ((b8(s + k) >> 6u) << 4u)));
}
fn dq8(blk: u32, g: u32) -> array<vec4<f32>, 2> {
  let c = g >> 3u;
  let hi = (g >> 2u) & 1u;
  let l0 = (g & 3u) * 8u;
  let sm = kq_scale_min(blk + 4u, 2u * c + hi);
  let dl = h2f(b16(blk)) * sm.x;
  let ml = h2f(b16(blk + 2u)) * sm.y;
  let o = blk + 16u + 32u * c + l0;
  let sh = 4u * hi;
  return array<vec4<f32>, 2>(dl * vec4<f32>(nib(b32(o) >> sh)) - ml, dl * vec4<f32>(nib(b32(o + 4u) >> sh)) - ml);
}
