// Q5_K (176 bytes / 256): d:f16, dmin:f16 @2, scales:u8[12] @4 (as Q4_K), qh:u8[32] @16, qs:u8[128] @48 (as Q4_K's).
// The 5th bit of the element at position l (0..31) of sub-block k is bit k of qh[l]; value (d*sc)*q - dmin*m.
// Blk, blk and kq_scale_min come from _ggml_kq_header.wgsl.
const QK: u32 = 256u;
const QB: u32 = 176u;
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
