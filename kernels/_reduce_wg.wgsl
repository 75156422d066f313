// Row sums of matvec_coop in workgroup memory: red [ROWS, WG], a tree of log2(WG) halvings with a barrier each
// (WG a power of two); lane 0 stores.
// @section args: no extra builtins
// @section reduce
red[#r * WG + lid] = a#r;
for (var s = WG / 2u; s > 0u; s >>= 1u) {
  workgroupBarrier();
  if (lid < s) {
    red[#r * WG + lid] += red[#r * WG + lid + s];
  }
}
if (lid == 0u) {
  emit(r, #ru, ob, red[#r * WG]);
}
