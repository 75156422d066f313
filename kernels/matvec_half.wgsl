// Matvec, f16 or bf16 weights: out[t, row_off + r] = dot(x[t, :], W[r, :]) (+ bias[row_off + r]) for one row part.
// W: [n, k] row-major, k % 8 == 0, bound as vec4<u32> (8 values), decoded by lo()/hi() from the dtype's decode file
// (_decode_f16.wgsl or _decode_bf16.wgsl), which lib/gpu/_matmul.ts prepends to this body.
// x: f32 [T, k] bound as vec4<f32>; token t = workgroup_id.z; row groups fold over workgroup_id.x/y.
// Each invocation computes RI = 8 consecutive rows: each x chunk is loaded once and reused by the 8 rows (on lavapipe
// every storage load is a per-lane scalar loop, so loads per weight byte bound the speed); vec4 accumulators per row;
// no barriers, no workgroup memory. Rows past n are clamped for loads and not stored. Binding order: inputs, output,
// params.
struct Params { n: u32, k: u32, t: u32, row_off: u32, out_stride: u32, has_bias: u32, nb: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
override WG: u32 = 16;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = ((wid.x + wid.y * nwg.x) * WG + lid) * 8u;
  if (r >= p.n) { return; }
  let last = p.n - 1u;
  let k4 = p.k / 4u;
  let k8 = p.k / 8u;
  let xb = wid.z * k4;
  let b0 = r * k8; var a0 = vec4<f32>(0.0);
  let b1 = min(r + 1u, last) * k8; var a1 = vec4<f32>(0.0);
  let b2 = min(r + 2u, last) * k8; var a2 = vec4<f32>(0.0);
  let b3 = min(r + 3u, last) * k8; var a3 = vec4<f32>(0.0);
  let b4 = min(r + 4u, last) * k8; var a4 = vec4<f32>(0.0);
  let b5 = min(r + 5u, last) * k8; var a5 = vec4<f32>(0.0);
  let b6 = min(r + 6u, last) * k8; var a6 = vec4<f32>(0.0);
  let b7 = min(r + 7u, last) * k8; var a7 = vec4<f32>(0.0);
  for (var i = 0u; i < k8; i++) {
    let x0 = x[xb + 2u * i]; let x1 = x[xb + 2u * i + 1u];
    { let v = w[b0 + i]; a0 += lo(v) * x0 + hi(v) * x1; }
    { let v = w[b1 + i]; a1 += lo(v) * x0 + hi(v) * x1; }
    { let v = w[b2 + i]; a2 += lo(v) * x0 + hi(v) * x1; }
    { let v = w[b3 + i]; a3 += lo(v) * x0 + hi(v) * x1; }
    { let v = w[b4 + i]; a4 += lo(v) * x0 + hi(v) * x1; }
    { let v = w[b5 + i]; a5 += lo(v) * x0 + hi(v) * x1; }
    { let v = w[b6 + i]; a6 += lo(v) * x0 + hi(v) * x1; }
    { let v = w[b7 + i]; a7 += lo(v) * x0 + hi(v) * x1; }
  }
  let ob = wid.z * p.out_stride + p.row_off + r;
  let s = array<f32, 8>(dot(a0, vec4<f32>(1.0)), dot(a1, vec4<f32>(1.0)), dot(a2, vec4<f32>(1.0)), dot(a3, vec4<f32>(1.0)), dot(a4, vec4<f32>(1.0)), dot(a5, vec4<f32>(1.0)), dot(a6, vec4<f32>(1.0)), dot(a7, vec4<f32>(1.0)));
  for (var j = 0u; j < 8u; j++) {
    if (r + j < p.n) {
      var v = s[j];
      if (p.has_bias != 0u) { v += bias[p.row_off + r + j]; }
      o[ob + j] = v;
    }
  }
}
