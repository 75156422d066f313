// IQ4_NL (18 bytes / 32): d:f16, qs:u8[16]; element j = d*K[low nibble of qs[j]], j+16 = d*K[high nibble], K the
// 16-entry non-linear table below (ggml's kvalues_iq4nl).
const QK: u32 = 32u;
const QB: u32 = 18u;
var<private> IQ4K: array<f32, 16> = array<f32, 16>(-127.0, -104.0, -83.0, -65.0, -49.0, -35.0, -22.0, -10.0, 1.0, 13.0,
  25.0, 38.0, 53.0, 69.0, 89.0, 113.0);
struct Blk { d: f32 }
fn blk(o: u32) -> Blk { return Blk(h2f(b16(o))); }
fn iq4(n: vec4<u32>) -> vec4<f32> { return vec4<f32>(IQ4K[n.x], IQ4K[n.y], IQ4K[n.z], IQ4K[n.w]); }
fn dq8(h: Blk, o: u32, g: u32) -> array<vec4<f32>, 2> {
  let q = o + 2u + (g & 1u) * 8u;
  let sh = (g >> 1u) * 4u;
  return array<vec4<f32>, 2>(h.d * iq4(nib(b32(q) >> sh)), h.d * iq4(nib(b32(q + 4u) >> sh)));
}
