// Q6_K (210 bytes / 256): ql:u8[128], qh:u8[64] @128, scales:i8[16] @192, d:f16 @208. Half n (0..1), quadrant k
// (0..3), position l (0..31): element 128n + 32k + l has low 4 bits in the low (k < 2) or high (k >= 2) nibble of
// ql[64n + 32(k & 1) + l], high 2 bits (qh[32n + l] >> 2k) & 3, scale scales[8n + 2k + l/16]; value (d*scale)*(q - 32).
const QK: u32 = 256u;
const QB: u32 = 210u;
struct Blk { d: f32, sc: array<u32, 4> }
fn blk(o: u32) -> Blk {
  return Blk(h2f(b16(o + 208u)), array<u32, 4>(b32(o + 192u), b32(o + 196u), b32(o + 200u), b32(o + 204u)));
}
fn dq8(h: Blk, o: u32, g: u32) -> array<vec4<f32>, 2> {
  let n = g >> 4u;
  let k = (g >> 2u) & 3u;
  let l0 = (g & 3u) * 8u;
  let i = 8u * n + 2u * k + (l0 >> 4u);
  let dl = h.d * f32(i32(wb(h.sc[i >> 2u], i) << 24u) >> 24u);
  let q = o + 64u * n + 32u * (k & 1u) + l0;
  let sh = 4u * (k >> 1u);
  let hs = vec4<u32>(2u * k);
  let hq = o + 128u + 32u * n + l0;
  let q0 = nib(b32(q) >> sh) | (((lanes(b32(hq)) >> hs) & vec4<u32>(3u)) << vec4<u32>(4u));
  let q1 = nib(b32(q + 4u) >> sh) | (((lanes(b32(hq + 4u)) >> hs) & vec4<u32>(3u)) << vec4<u32>(4u));
  return array<vec4<f32>, 2>(dl * (vec4<f32>(q0) - 32.0), dl * (vec4<f32>(q1) - 32.0));
}
