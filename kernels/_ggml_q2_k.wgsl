// Q2_K (84 bytes / 256): scales:u8[16] (low nibble scale, high nibble min), qs:u8[64], d:f16 @80, dmin:f16 @82.
// Element 128n + 32j + l (n 0..1, j 0..3, l 0..31): q = (qs[32n + l] >> 2j) & 3, sub-block 8n + 2j + (l >= 16);
// value (d*scale)*q - dmin*min. Group g = 16n + 4j + l/8.
const QK: u32 = 256u;
const QB: u32 = 84u;
struct Blk { d: f32, dmin: f32, sc: array<u32, 4> }
fn blk(o: u32) -> Blk {
  let a = o >> 2u;
  let v = w[a + 20u];
  return Blk(h2f(v & 0xffffu), h2f(v >> 16u), array<u32, 4>(w[a], w[a + 1u], w[a + 2u], w[a + 3u]));
}
fn dq8(h: Blk, o: u32, g: u32) -> array<vec4<f32>, 2> {
  let n = g >> 4u;
  let j = (g >> 2u) & 3u;
  let l0 = (g & 3u) * 8u;
  let i = 8u * n + 2u * j + (l0 >> 4u);
  let sc = wb(h.sc[i >> 2u], i);
  let dl = h.d * f32(sc & 0xfu);
  let ml = h.dmin * f32(sc >> 4u);
  let q = (o >> 2u) + 4u + 8u * n + (l0 >> 2u);
  let s = vec4<u32>(2u * j);
  let q0 = (lanes(w[q]) >> s) & vec4<u32>(3u);
  let q1 = (lanes(w[q + 1u]) >> s) & vec4<u32>(3u);
  return array<vec4<f32>, 2>(dl * vec4<f32>(q0) - ml, dl * vec4<f32>(q1) - ml);
}
