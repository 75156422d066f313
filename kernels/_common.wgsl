// Shared by every kernel (prepended by lib/gpu/_wgsl.ts before the generated Params and bindings).
// f16 bits (low 16 bits of h) -> f32 with integer ops and one multiply by 2^112 (no shader-f16 or unpack2x16float,
// which is slow on lavapipe): exact for normal and subnormal halves (inf/NaN become large finite).
fn h2f(h: u32) -> f32 {
  return bitcast<f32>(((h & 0x7fffu) << 13u) | ((h & 0x8000u) << 16u)) * 5.192296858534828e33;
}
// Linear workgroup index of a dispatch folded into x * y (KernelContext.dispatch); guard it against the real count.
fn wg_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.x + wid.y * nwg.x; }
