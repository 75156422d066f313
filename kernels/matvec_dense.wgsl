// Matvec, plain float weights (f32, f16, bf16): out[t, rowOff + r] = dot(x[t, :], W[r, :]) (+ bias[rowOff + r]) for
// one row part. W: [n, k] row-major, k % 8 == 0, bound as vec4<u32>; load8(i) / dec8(v, j) from the encoding's
// _decode_<name>.wgsl give the 8 values of group i of a row as two vec4<f32> (j = 0, 1). x: f32 [T, k] as vec4<f32>;
// token t = workgroup_id.z; row groups fold over workgroup_id.x/y.
// Each invocation computes ROWS consecutive rows (r): each x chunk is loaded once and reused by every row (on
// lavapipe every storage load is a per-lane scalar loop, so loads per weight byte bound the speed); vec4
// accumulators per row; no barriers, no workgroup memory. Rows past n are clamped for loads and not stored.
override WG: u32 = 16;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = (wg_index(wid, nwg) * WG + lid) * {{ROWS}}u;
  if (r >= params.n) { return; }
  let last = params.n - 1u;
  let k8 = params.k / 8u;
  let xb = wid.z * (params.k / 4u);
  let b#r = min(r + #ru, last) * k8; var a#r = vec4<f32>(0.0);
  for (var i = 0u; i < k8; i++) {
    let x0 = x[xb + 2u * i]; let x1 = x[xb + 2u * i + 1u];
    { let v = load8(b#r + i); a#r += dec8(v, 0u) * x0 + dec8(v, 1u) * x1; }
  }
  let ob = wid.z * params.outStride + params.rowOff + r;
  emit(r, #ru, ob, dot(a#r, vec4<f32>(1.0)));
}
