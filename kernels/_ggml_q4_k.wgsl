// Q4_K (144 bytes / 256): d:f16, dmin:f16 @2, scales:u8[12] @4 (8 six-bit scales and mins), qs:u8[128] @16.
// Chunk c (0..3) covers elements 64c..64c+63: 64c + l (l < 32) is the low nibble of qs[32c + l] (sub-block 2c),
// 64c + 32 + l the high nibble (sub-block 2c + 1); value (d*sc)*q - dmin*m. Blk, blk and kq_scale_min come from
// _ggml_kq_header.wgsl.
const QK: u32 = 256u;
const QB: u32 = 144u;
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
