// Shared by the weight kernels (matvec_*, matmul_*): the output of row r0 + j of one token, plus the bias, skipped
// past the part's last row. out[t, rowOff + r] with ob = t * outStride + rowOff + r0.
fn emit(r0: u32, j: u32, ob: u32, s: f32) {
  if (r0 + j < params.n) {
    var v = s;
    if (params.hasBias != 0u) { v += bias[params.rowOff + r0 + j]; }
    store(ob + j, v);
  }
}
