// Q5_K (176 bytes / 256): d:f16, dmin:f16 @2, scales:u8[12] @4 (as Q4_K), qh:u8[32] @16, qs:u8[128] @48 (as Q4_K's).
// The 5th bit of the element at position l (0..31) of sub-block k is bit k of qh[l]; value (d*sc)*q - dmin*m.
const QK: u32 = 256u;
const QB: u32 = 176u;
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
fn dq8(h: Blk, o: u32, g: u32) -> array<vec4<f32>, 2> {
  let c = g >> 3u;
  let hi = (g >> 2u) & 1u;
  let k = 2u * c + hi;
  let sm = kq_scale_min(h.sc, k);
  let dl = h.d * sm.x;
  let ml = h.dmin * sm.y;
  let a = o >> 2u;
  let l = 2u * (g & 3u);
  let q = a + 12u + 8u * c + l;
  let sh = 4u * hi;
  let hk = vec4<u32>(k);
  let q0 = nib(w[q] >> sh) | (((lanes(w[a + 4u + l]) >> hk) & vec4<u32>(1u)) << vec4<u32>(4u));
  let q1 = nib(w[q + 1u] >> sh) | (((lanes(w[a + 5u + l]) >> hk) & vec4<u32>(1u)) << vec4<u32>(4u));
  return array<vec4<f32>, 2>(dl * vec4<f32>(q0) - ml, dl * vec4<f32>(q1) - ml);
}
