// Q2_K (84 bytes / 256): scales:u8[16] (low nibble scale, high nibble min), qs:u8[64], d:f16 @80, dmin:f16 @82.
// Element 128n + 32j + l (n 0..1, j 0..3, l 0..31): q = (qs[32n + l] >> 2j) & 3, sub-block 8n + 2j + (l >= 16);
// value (d*scale)*q - dmin*min. dq8(blk, g): elements 8g..8g+7 (g = 16n + 4j + l/8).
const QK: u32 = 256u;
const QB: u32 = 84u;
fn dq8(blk: u32, g: u32) -> array<vec4<f32>, 2> {
  let n = g >> 4u;
  let j = (g >> 2u) & 3u;
  let l0 = (g & 3u) * 8u;
  let sc = b8(blk + 8u * n + 2u * j + (l0 >> 4u));
  let dl = h2f(b16(blk + 80u)) * f32(sc & 0xfu);
  let ml = h2f(b16(blk + 82u)) * f32(sc >> 4u);
  let o = blk + 16u + 32u * n + l0;
  let s = vec4<u32>(2u * j);
  let q0 = (lanes(b32(o)) >> s) & vec4<u32>(3u);
  let q1 = (lanes(b32(o + 4u)) >> s) & vec4<u32>(3u);
  return array<vec4<f32>, 2>(dl * vec4<f32>(q0) - ml, dl * vec4<f32>(q1) - ml);
}
