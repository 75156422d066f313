// Decode of q8 weights: blocks of 32 along a row, data i8 [n, nb*32] (x = d * q), scales f16 [n, nb] (sc).
// @section scalar: element c of row r for matmul_generic (w: array<u32>).
fn weight_at(r: u32, c: u32) -> f32 {
  let byte = r * p.nb * 32u + c;
  let q = bitcast<i32>(w[byte >> 2u] << (24u - 8u * (byte & 3u))) >> 24u;
  return f32(q) * scale(r * p.nb + c / 32u);
}
