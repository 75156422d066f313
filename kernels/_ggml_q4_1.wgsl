// Q4_1 (20 bytes / 32): d:f16, m:f16, qs:u8[16]; element j = low nibble of qs[j] * d + m, j+16 = high nibble * d + m.
const QK: u32 = 32u;
const QB: u32 = 20u;
struct Blk { d: f32, m: f32 }
fn blk(o: u32) -> Blk { let v = w[o >> 2u]; return Blk(h2f(v & 0xffffu), h2f(v >> 16u)); }
fn dq8(h: Blk, o: u32, g: u32) -> array<vec4<f32>, 2> {
  let q = ((o + 4u) >> 2u) + (g & 1u) * 2u;
  let sh = (g >> 1u) * 4u;
  return array<vec4<f32>, 2>(vec4<f32>(nib(w[q] >> sh)) * h.d + h.m, vec4<f32>(nib(w[q + 1u] >> sh)) * h.d + h.m);
}
