// Q5_1 (24 bytes / 32): d:f16, m:f16, qh:u32, qs:u8[16]; q as in Q5_0, value q*d + m.
const QK: u32 = 32u;
const QB: u32 = 24u;
struct Blk { d: f32, m: f32, qh: u32 }
fn blk(o: u32) -> Blk { let v = w[o >> 2u]; return Blk(h2f(v & 0xffffu), h2f(v >> 16u), w[(o >> 2u) + 1u]); }
fn dq8(h: Blk, o: u32, g: u32) -> array<vec4<f32>, 2> {
  let qh = h.qh >> (8u * g);
  let q = ((o + 8u) >> 2u) + (g & 1u) * 2u;
  let sh = (g >> 1u) * 4u;
  let q0 = nib(w[q] >> sh) | (bits4(qh, 0u) << vec4<u32>(4u));
  let q1 = nib(w[q + 1u] >> sh) | (bits4(qh, 4u) << vec4<u32>(4u));
  return array<vec4<f32>, 2>(vec4<f32>(q0) * h.d + h.m, vec4<f32>(q1) * h.d + h.m);
}
