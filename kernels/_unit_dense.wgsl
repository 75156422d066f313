// GPU family (matvec_coop, matmul_tiled), plain float weights (f32, f16, bf16): unit u of row r is the 16-byte word u
// of the row, UNIT = 4 values (f32) or 8 (f16, bf16), decoded by the encoding's block section (load_unit / dec_unit)
// into UV vec4 of values. k % UNIT == 0 (the encoding's gpu.align).
const UNIT: u32 = {{UNIT}}u;
const UV: u32 = {{UV}}u;
fn unit(r: u32, u: u32) -> array<vec4<f32>, {{UV}}> {
  let v = load_unit(r * (params.k / UNIT) + u);
  return array<vec4<f32>, {{UV}}>({%dec_unit(v, #ju)%});
}
