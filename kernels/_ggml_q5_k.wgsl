// Q5_K (176 bytes / 256): d:f16, dmin:f16 @2, scales:u8[12] @4 (as Q4_K), qh:u8[32] @16, qs:u8[128] @48 (as Q4_K's).
// The 5th bit of the element at position l (0..31) of sub-block k is bit k of qh[l]; value (d*sc)*q - dmin*m.
// dq8(blk, g): elements 8g..8g+7.
const QK: u32 = 256u;
const QB: u32 = 176u;
fn kq_scale_min(s: u32, k: u32) -> vec2<f32> {
  if (k < 4u) { return vec2<f32>(f32(b8(s + k) & 63u), f32(b8(s + k + 4u) & 63u)); }
  let e = b8(s + k + 4u);
  return vec2<f32>(f32((e & 0xfu) | ((b8(s + k - 4u) >> 6u) << 4u)), f32((e >> 4u) | ((b8(s + k) >> 6u) << 4u)));
}
fn dq8(blk: u32, g: u32) -> array<vec4<f32>, 2> {
  let c = g >> 3u;
  let hi = (g >> 2u) & 1u;
  let l0 = (g & 3u) * 8u;
  let k = 2u * c + hi;
  let sm = kq_scale_min(blk + 4u, k);
  let dl = h2f(b16(blk)) * sm.x;
  let ml = h2f(b16(blk + 2u)) * sm.y;
  let o = blk + 48u + 32u * c + l0;
  let sh = 4u * hi;
  let hk = vec4<u32>(k);
  let q0 = nib(b32(o) >> sh) | (((lanes(b32(blk + 16u + l0)) >> hk) & vec4<u32>(1u)) << vec4<u32>(4u));
  let q1 = nib(b32(o + 4u) >> sh) | (((lanes(b32(blk + 20u + l0)) >> hk) & vec4<u32>(1u)) << vec4<u32>(4u));
  return array<vec4<f32>, 2>(dl * vec4<f32>(q0) - ml, dl * vec4<f32>(q1) - ml);
}
