// Matmul fallback for any weight dtype and any k (no alignment needed): out[t, row_off + r] = dot(x[t, :], W[r, :])
// (+ bias) for one row part; one invocation per (row, token), scalar loads. Used when k is not a multiple of the
// vector width of the fast kernels (the encoding's gpu.align). W as u32 words in the shard layout; the element
// decode weight_at(r, c) is the `scalar` section of the encoding's _decode_<name>.wgsl, prepended by the launcher
// (it may use half_at and scale below). Rows fold over workgroup_id.x/y, token = z.
// Binding order: inputs, output, params.
struct Params { n: u32, k: u32, t: u32, row_off: u32, out_stride: u32, has_bias: u32, nb: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> sc: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
override WG: u32 = 64;

fn half_at(idx: u32) -> u32 {
  return (w[idx >> 1u] >> (16u * (idx & 1u))) & 0xffffu;
}

fn scale(idx: u32) -> f32 {
  let pair = unpack2x16float(sc[idx >> 1u]);
  return select(pair.x, pair.y, (idx & 1u) == 1u);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * WG + lid;
  if (r >= p.n) { return; }
  _ = &sc; // bound for every encoding (the fixed binding order), used only by those with scales
  let t = wid.z;
  let xb = t * p.k;
  var acc = 0.0;
  for (var k = 0u; k < p.k; k++) {
    acc += weight_at(r, k) * x[xb + k];
  }
  if (p.has_bias != 0u) { acc += bias[p.row_off + r]; }
  o[t * p.out_stride + p.row_off + r] = acc;
}
