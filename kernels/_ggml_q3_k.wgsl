// Q3_K (110 bytes / 256): hmask:u8[32], qs:u8[64] @32, scales:u8[12] @96 (16 x 6 bits), d:f16 @108.
// Element 128n + 32j + l: low 2 bits (qs[32n + l] >> 2j) & 3, high bit = bit 4n + j of hmask[l], code = low - 4 when
// the high bit is clear; sub-block i = 8n + 2j + (l >= 16) has scale (low 4 bits: byte i (i < 8, low nibble) or i - 8
// (high nibble); high 2 bits: byte 8 + i % 4 at bit 2*(i / 4)) - 32; value (d*scale)*code. Group g = 16n + 4j + l/8.
const QK: u32 = 256u;
const QB: u32 = 110u;
struct Blk { d: f32, sc: array<u32, 3> }
fn blk(o: u32) -> Blk { return Blk(h2f(b16(o + 108u)), array<u32, 3>(b32(o + 96u), b32(o + 100u), b32(o + 104u))); }
fn dq8(h: Blk, o: u32, g: u32) -> array<vec4<f32>, 2> {
  let n = g >> 4u;
  let j = (g >> 2u) & 3u;
  let l0 = (g & 3u) * 8u;
  let i = 8u * n + 2u * j + (l0 >> 4u);
  let lo4 = (wb(h.sc[(i & 7u) >> 2u], i) >> (4u * (i >> 3u))) & 0xfu;
  let hi2 = (wb(h.sc[2u], i & 3u) >> (2u * (i >> 2u))) & 3u;
  let dl = h.d * (f32(lo4 | (hi2 << 4u)) - 32.0);
  let q = o + 32u + 32u * n + l0;
  let sh = vec4<u32>(2u * j);
  let hb = vec4<u32>(4u * n + j);
  let q0 = ((lanes(b32(q)) >> sh) & vec4<u32>(3u)) + (((lanes(b32(o + l0)) >> hb) & vec4<u32>(1u)) << vec4<u32>(2u));
  let q1 = ((lanes(b32(q + 4u)) >> sh) & vec4<u32>(3u)) + (((lanes(b32(o + l0 + 4u)) >> hb) & vec4<u32>(1u)) << vec4<u32>(2u));
  return array<vec4<f32>, 2>(dl * (vec4<f32>(q0) - 4.0), dl * (vec4<f32>(q1) - 4.0));
}
