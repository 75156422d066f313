// GPU family (matvec_coop, matmul_tiled), block-scaled weights (q8, q4): unit u of row r is block u of the row
// (UNIT = 32 values: 16 bytes for q4, 32 for q8, plus its f16 scale), decoded by the encoding's block section
// (load_block / dec) and scaled (scale(), _scales.wgsl). k % 32 == 0.
const UNIT: u32 = 32u;
const UV: u32 = 8u;
fn unit(r: u32, u: u32) -> array<vec4<f32>, 8> {
  let i = r * params.nb + u;
  let b = load_block(i);
  let d = scale(i);
  return array<vec4<f32>, 8>({%dec(b, #ju) * d%});
}
