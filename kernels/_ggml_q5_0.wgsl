// Q5_0 (22 bytes / 32): d:f16, qh:u32, qs:u8[16]; element e has its 5th bit at bit e of qh, its low 4 bits in the low
// (e < 16) or high (e >= 16) nibble of qs[e % 16]; value d*(q - 16).
const QK: u32 = 32u;
const QB: u32 = 22u;
struct Blk { d: f32, qh: u32 }
fn blk(o: u32) -> Blk { return Blk(h2f(b16(o)), b32(o + 2u)); }
fn dq8(h: Blk, o: u32, g: u32) -> array<vec4<f32>, 2> {
  let qh = h.qh >> (8u * g);
  let q = o + 6u + (g & 1u) * 8u;
  let sh = (g >> 1u) * 4u;
  let q0 = nib(b32(q) >> sh) | (bits4(qh, 0u) << vec4<u32>(4u));
  let q1 = nib(b32(q + 4u) >> sh) | (bits4(qh, 4u) << vec4<u32>(4u));
  return array<vec4<f32>, 2>(h.d * (vec4<f32>(q0) - 16.0), h.d * (vec4<f32>(q1) - 16.0));
}
