// GPU family (matvec_coop, matmul_tiled), GGUF block weights as stored in the file: unit u of row r is 32 consecutive
// values, groups 4c..4c+3 (of 8 values) of one block of QK values and QB bytes: the whole block for the 32-value
// types, an eighth of a 256-value K-quant block. Decoded by the type's snippet (_ggml_<type>.wgsl after
// _ggml_common.wgsl): blk once per unit, dq8 per group. k % QK == 0; params.nb = blocks per row.
const UNIT: u32 = 32u;
const UV: u32 = 8u;
fn unit(r: u32, u: u32) -> array<vec4<f32>, 8> {
  let cpb = QK / 32u; // units per block
  let o = (r * params.nb + u / cpb) * QB;
  let g = (u % cpb) * 4u;
  let h = blk(o);
  let v0 = dq8(h, o, g);
  let v1 = dq8(h, o, g + 1u);
  let v2 = dq8(h, o, g + 2u);
  let v3 = dq8(h, o, g + 3u);
  return array<vec4<f32>, 8>(v0[0], v0[1], v1[0], v1[1], v2[0], v2[1], v3[0], v3[1]);
}
