// The header shared by Q4_K and Q5_K (prepended to their snippets): d:f16, dmin:f16 @2, scales:u8[12] @4 holding 8
// six-bit sub-block scales and mins. kq_scale_min(s, k) unpacks sub-block k's scale and min from the 12 scale bytes
// s: k < 4: low 6 bits of bytes k and k+4; k >= 4: the nibbles of byte k+4 and the top 2 bits of bytes k-4 and k.
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
