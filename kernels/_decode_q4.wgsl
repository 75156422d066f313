// Decode of q4 weights: blocks of 32 along a row, data u8 [n, nb*16] (byte j of a block = element j in the low
// nibble, element j + 16 in the high nibble; x = d * (nibble - 8)), scales f16 [n, nb] (sc).
// @section scalar: element c of row r for matmul_generic (w: array<u32>).
fn weight_at(r: u32, c: u32) -> f32 {
  let j = c & 31u;
  let byte = r * p.nb * 16u + (c / 32u) * 16u + (j & 15u);
  let q = (w[byte >> 2u] >> (8u * (byte & 3u) + select(0u, 4u, j >= 16u))) & 15u;
  return (f32(q) - 8.0) * scale(r * p.nb + c / 32u);
}
