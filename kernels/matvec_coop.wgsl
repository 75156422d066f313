// Matvec, GPU family, any weight encoding: out[t, rowOff + r] = dot(x[t, :], W[r, :]) (+ bias[rowOff + r]) for one row
// part. A workgroup of WG lanes owns ROWS consecutive rows (r); lane l takes the units l, l + WG, l + 2 WG, ... of
// every row, so neighbouring lanes read neighbouring units (a unit is one 16-byte word for plain floats, one 32-value
// block or chunk for the block types: unit(r, u) from _unit_<class>.wgsl) and each x load serves all ROWS rows. The
// per-lane partial sums are reduced once per row at the end: in workgroup memory (_reduce_wg.wgsl) or with
// subgroupAdd where the device has `subgroups` (_reduce_sg.wgsl). x: f32 [T, k] as vec4<f32>; token t = workgroup_id.z;
// row groups fold over workgroup_id.x/y. Rows past n are clamped for loads and not stored.
const WG: u32 = {{WG}}u;
var<workgroup> red: array<f32, {{RED}}>;

@compute @workgroup_size({{WG}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32,
        // @insert args
) {
  let r = wg_index(wid, nwg) * {{ROWS}}u;
  if (r >= params.n) { return; }
  let last = params.n - 1u;
  let units = params.k / UNIT;
  let xb = wid.z * (params.k / 4u);
  let r#r = min(r + #ru, last); var a#r = 0.0;
  for (var u = lid; u < units; u += WG) {
    let xo = xb + u * UV;
    let xc = array<vec4<f32>, {{UV}}>({%x[xo + #ju]%});
    { let v = unit(r#r, u); var s = 0.0; {%s += dot(v[#j], xc[#j]);%} a#r += s; }
  }
  let ob = wid.z * params.outStride + params.rowOff + r;
  // @insert reduce
}
