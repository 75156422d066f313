// Row sums of matvec_coop with subgroup operations (devices with the `subgroups` feature; `enable subgroups;`):
// subgroupAdd within each subgroup, one partial per subgroup in workgroup memory, one barrier, lane 0 adds the
// WG / subgroup_size partials and stores.
// @section args
        @builtin(subgroup_invocation_id) sgi: u32, @builtin(subgroup_size) sgs: u32,
// @section reduce
let s#r = subgroupAdd(a#r);
if (sgi == 0u) {
  red[#r * WG + lid / sgs] = s#r;
}
workgroupBarrier();
if (lid == 0u) {
  let nsg = (WG + sgs - 1u) / sgs;
  var t#r = 0.0;
  for (var i = 0u; i < nsg; i++) {
    t#r += red[#r * WG + i];
  }
  emit(r, #ru, ob, t#r);
}
