// Matmul fallback for any weight dtype and any k (no alignment needed): out[t, row_off + r] = dot(x[t, :], W[r, :])
// (+ bias) for one row part; one invocation per (row, token), scalar loads. Used when k is not a multiple of the
// vector width of the fast kernels (f32: 4, f16/bf16: 8, q8/q4: 32). DT (override): 0 f32, 1 f16, 2 bf16, 3 q8, 4 q4.
// W as u32 words in the shard layout: f32/f16/bf16 row-major [n, k] (halves packed two per word, low half first);
// q8: i8 [n, nb*32] + f16 scales [n, nb]; q4: u8 [n, nb*16] (byte j of a block = element j low nibble, element
// j + 16 high nibble; x = d * (nibble - 8)) + f16 scales [n, nb]. Rows fold over workgroup_id.x/y, token = z.
// Binding order: inputs, output, params.
struct Params { n: u32, k: u32, t: u32, row_off: u32, out_stride: u32, has_bias: u32, nb: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> sc: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
override WG: u32 = 64;
override DT: u32 = 0u;

fn half_at(idx: u32) -> u32 {
  return (w[idx >> 1u] >> (16u * (idx & 1u))) & 0xffffu;
}

fn scale(idx: u32) -> f32 {
  let pair = unpack2x16float(sc[idx >> 1u]);
  return select(pair.x, pair.y, (idx & 1u) == 1u);
}

fn weight(r: u32, k: u32) -> f32 {
  switch DT {
    case 0u: { return bitcast<f32>(w[r * p.k + k]); }
    case 1u: { return unpack2x16float(half_at(r * p.k + k)).x; }
    case 2u: { return bitcast<f32>(half_at(r * p.k + k) << 16u); }
    case 3u: {
      let byte = r * p.nb * 32u + k;
      let q = bitcast<i32>(w[byte >> 2u] << (24u - 8u * (byte & 3u))) >> 24u;
      return f32(q) * scale(r * p.nb + k / 32u);
    }
    default: {
      let j = k & 31u;
      let byte = r * p.nb * 16u + (k / 32u) * 16u + (j & 15u);
      let q = (w[byte >> 2u] >> (8u * (byte & 3u) + select(0u, 4u, j >= 16u))) & 15u;
      return (f32(q) - 8.0) * scale(r * p.nb + k / 32u);
    }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * WG + lid;
  if (r >= p.n) { return; }
  let t = wid.z;
  let xb = t * p.k;
  var acc = 0.0;
  for (var k = 0u; k < p.k; k++) {
    acc += weight(r, k) * x[xb + k];
  }
  if (p.has_bias != 0u) { acc += bias[p.row_off + r]; }
  o[t * p.out_stride + p.row_off + r] = acc;
}
