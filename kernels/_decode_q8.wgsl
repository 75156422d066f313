// Decode of q8 weights: blocks of 32 along a row, data i8 [n, nb*32] (x = d * q; 2 vec4<u32> per block), scales
// f16 [n, nb] (scale(i), _scales.wgsl).
// @section block: block i for matvec_blocks / matmul_blocks (w: vec4<u32>).
const SH = vec4<u32>(24u, 16u, 8u, 0u);
fn dq(v: u32) -> vec4<f32> { return vec4<f32>((vec4<i32>(bitcast<i32>(v)) << SH) >> vec4<u32>(24u)); }
fn dot_block(u: vec4<u32>, v: vec4<u32>, xc: array<vec4<f32>, 8>) -> f32 {
  let p = dq(u.x) * xc[0] + dq(u.y) * xc[1] + dq(u.z) * xc[2] + dq(u.w) * xc[3]
        + dq(v.x) * xc[4] + dq(v.y) * xc[5] + dq(v.z) * xc[6] + dq(v.w) * xc[7];
  return dot(p, vec4<f32>(1.0));
}
fn block_dot(i: u32, xc: array<vec4<f32>, 8>, xs8: f32) -> f32 { return dot_block(w[2u * i], w[2u * i + 1u], xc); }
fn load_block(i: u32) -> array<vec4<u32>, 2> { return array<vec4<u32>, 2>(w[2u * i], w[2u * i + 1u]); }
fn dec(b: array<vec4<u32>, 2>, j: u32) -> vec4<f32> { return dq(b[j / 4u][j % 4u]); }
// @section scalar: element c of row r for matmul_generic (w: array<u32>).
fn weight_at(r: u32, c: u32) -> f32 {
  let byte = r * params.nb * 32u + c;
  let q = bitcast<i32>(w[byte >> 2u] << (24u - 8u * (byte & 3u))) >> 24u;
  return f32(q) * scale(r * params.nb + c / 32u);
}
