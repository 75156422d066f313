// Q4_K (144 bytes / 256): d:f16, dmin:f16 @2, scales:u8[12] @4 (8 six-bit scales and mins), qs:u8[128] @16.
// Chunk c (0..3) covers elements 64c..64c+63: 64c + l (l < 32) is the low nibble of qs[32c + l] (sub-block 2c),
// 64c + 32 + l the high nibble (sub-block 2c + 1); value (d*sc)*q - dmin*m. kq_scale_min(s, k) unpacks sub-block k's
// scale and min from the 12 scale bytes s: k < 4: low 6 bits of bytes k and k+4; k >= 4: the nibbles of byte k+4
// and the top 2 bits of bytes k-4 and k.
const QK: u32 = 256u;
const QB: u32 = 144u;
struct Blk { d: f32, dmin: f32, sc: array<u32, 3> }
fn blk(o: u32) -> Blk {
  let a = o >> 2u;
  let v = w[a];
  return Blk(h2f(v & 0xffffu), h2f(v >> 16u), array<u32, 3>(w[a + 1u], w[a + 2u], w[a + 3u]));
}
fn kq_scale_min(s: array<u32, 3>, k: u32) -> vec2<f32> {
  if (k < 4u) { return vec2<f32>(f32(wb(s[0], k) & 63u), f32(wb(s[1], k) & 63u)); }
  let e = wb(s[2], k);
  return vec2<f32>(f32((e & 0xfu) | ((wb(s[0], k) >> 6u) << 4u)), f32((e >> 4u) | ((wb(s[1], k) >> 6u) << 4u)));
}
fn dq8(h: Blk, o: u32, g: u32) -> array<vec4<f32>, 2> {
  let c = g >> 3u;
  let hi = (g >> 2u) & 1u;
  let sm = kq_scale_min(h.sc, 2u * c + hi);
  let dl = h.d * sm.x;
  let ml = h.dmin * sm.y;
  let q = (o >> 2u) + 4u + 8u * c + 2u * (g & 3u);
  let sh = 4u * hi;
  return array<vec4<f32>, 2>(dl * vec4<f32>(nib(w[q] >> sh)) - ml, dl * vec4<f32>(nib(w[q + 1u] >> sh)) - ml);
}
