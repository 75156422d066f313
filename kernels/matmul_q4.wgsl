// Matmul (prefill and small batches), q4 weights: out[t, row_off + r] = dot(x[t, :], W[r, :]) (+ bias) for one
// row part. W: q4 u8 [n, nb*16] as vec4<u32> (1 per block; byte j = elem j low nibble, elem j+16 high nibble;
// x = d * (nibble - 8)) + f16 scales [n, nb] as u32 pairs; k % 32 == 0.
// x: f32 [T, k] bound as vec4<f32>. Each invocation computes a 4-row x 4-token register tile: per step it loads
// the 4 rows' weights once (per-lane loads, dequantized in registers) and the 4 tokens' x (the same for every
// lane of the workgroup, so cheap), then does 16 vec4 multiply-adds. Row groups fold over workgroup_id.x/y,
// token groups of 4 are workgroup_id.z. Rows/tokens past the end are clamped for loads and not stored.
// Binding order: inputs, output, params.
struct Params { n: u32, k: u32, t: u32, row_off: u32, out_stride: u32, has_bias: u32, nb: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> sc: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
// f16 bits (low 16 bits of h) -> f32 without shader-f16 or unpack2x16float (slow on lavapipe): move exponent and
// mantissa into place and rescale by 2^112; exact for normal and subnormal halves (inf/NaN become large finite).
fn h2f(h: u32) -> f32 {
  return bitcast<f32>(((h & 0x7fffu) << 13u) | ((h & 0x8000u) << 16u)) * 5.192296858534828e33;
}
fn scale(idx: u32) -> f32 {
  return h2f(sc[idx >> 1u] >> (16u * (idx & 1u)));
}
const SH = vec4<u32>(0u, 8u, 16u, 24u);
fn nlo(v: u32) -> vec4<f32> { return vec4<f32>((vec4<u32>(v) >> SH) & vec4<u32>(15u)) - vec4<f32>(8.0); }
fn nhi(v: u32) -> vec4<f32> { return vec4<f32>((vec4<u32>(v) >> (SH + vec4<u32>(4u))) & vec4<u32>(15u)) - vec4<f32>(8.0); }
override WG: u32 = 16;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let r = ((wid.x + wid.y * nwg.x) * WG + lid) * 4u;
  if (r >= p.n) { return; }
  let last = p.n - 1u;
  let t0 = wid.z * 4u;
  let tl = p.t - 1u;
  let k4 = p.k / 4u;
  let x0b = t0 * k4;
  let x1b = min(t0 + 1u, tl) * k4;
  let x2b = min(t0 + 2u, tl) * k4;
  let x3b = min(t0 + 3u, tl) * k4;
  let nb = p.nb;
  let r0 = r * nb;
  let r1 = min(r + 1u, last) * nb;
  let r2 = min(r + 2u, last) * nb;
  let r3 = min(r + 3u, last) * nb;
  var a00 = vec4<f32>(0.0);
  var a01 = vec4<f32>(0.0);
  var a02 = vec4<f32>(0.0);
  var a03 = vec4<f32>(0.0);
  var a10 = vec4<f32>(0.0);
  var a11 = vec4<f32>(0.0);
  var a12 = vec4<f32>(0.0);
  var a13 = vec4<f32>(0.0);
  var a20 = vec4<f32>(0.0);
  var a21 = vec4<f32>(0.0);
  var a22 = vec4<f32>(0.0);
  var a23 = vec4<f32>(0.0);
  var a30 = vec4<f32>(0.0);
  var a31 = vec4<f32>(0.0);
  var a32 = vec4<f32>(0.0);
  var a33 = vec4<f32>(0.0);
  for (var b = 0u; b < nb; b++) {
    let i0 = r0 + b;
    let i1 = r1 + b;
    let i2 = r2 + b;
    let i3 = r3 + b;
    let u0 = w[i0]; let d0 = scale(i0);
    let u1 = w[i1]; let d1 = scale(i1);
    let u2 = w[i2]; let d2 = scale(i2);
    let u3 = w[i3]; let d3 = scale(i3);
    var p00 = vec4<f32>(0.0);
    var p01 = vec4<f32>(0.0);
    var p02 = vec4<f32>(0.0);
    var p03 = vec4<f32>(0.0);
    var p10 = vec4<f32>(0.0);
    var p11 = vec4<f32>(0.0);
    var p12 = vec4<f32>(0.0);
    var p13 = vec4<f32>(0.0);
    var p20 = vec4<f32>(0.0);
    var p21 = vec4<f32>(0.0);
    var p22 = vec4<f32>(0.0);
    var p23 = vec4<f32>(0.0);
    var p30 = vec4<f32>(0.0);
    var p31 = vec4<f32>(0.0);
    var p32 = vec4<f32>(0.0);
    var p33 = vec4<f32>(0.0);
    {
      let g0 = nlo(u0.x);
      let g1 = nlo(u1.x);
      let g2 = nlo(u2.x);
      let g3 = nlo(u3.x);
      { let xv = x[x0b + 8u * b + 0u]; p00 += g0 * xv; p10 += g1 * xv; p20 += g2 * xv; p30 += g3 * xv; }
      { let xv = x[x1b + 8u * b + 0u]; p01 += g0 * xv; p11 += g1 * xv; p21 += g2 * xv; p31 += g3 * xv; }
      { let xv = x[x2b + 8u * b + 0u]; p02 += g0 * xv; p12 += g1 * xv; p22 += g2 * xv; p32 += g3 * xv; }
      { let xv = x[x3b + 8u * b + 0u]; p03 += g0 * xv; p13 += g1 * xv; p23 += g2 * xv; p33 += g3 * xv; }
    }
    {
      let g0 = nlo(u0.y);
      let g1 = nlo(u1.y);
      let g2 = nlo(u2.y);
      let g3 = nlo(u3.y);
      { let xv = x[x0b + 8u * b + 1u]; p00 += g0 * xv; p10 += g1 * xv; p20 += g2 * xv; p30 += g3 * xv; }
      { let xv = x[x1b + 8u * b + 1u]; p01 += g0 * xv; p11 += g1 * xv; p21 += g2 * xv; p31 += g3 * xv; }
      { let xv = x[x2b + 8u * b + 1u]; p02 += g0 * xv; p12 += g1 * xv; p22 += g2 * xv; p32 += g3 * xv; }
      { let xv = x[x3b + 8u * b + 1u]; p03 += g0 * xv; p13 += g1 * xv; p23 += g2 * xv; p33 += g3 * xv; }
    }
    {
      let g0 = nlo(u0.z);
      let g1 = nlo(u1.z);
      let g2 = nlo(u2.z);
      let g3 = nlo(u3.z);
      { let xv = x[x0b + 8u * b + 2u]; p00 += g0 * xv; p10 += g1 * xv; p20 += g2 * xv; p30 += g3 * xv; }
      { let xv = x[x1b + 8u * b + 2u]; p01 += g0 * xv; p11 += g1 * xv; p21 += g2 * xv; p31 += g3 * xv; }
      { let xv = x[x2b + 8u * b + 2u]; p02 += g0 * xv; p12 += g1 * xv; p22 += g2 * xv; p32 += g3 * xv; }
      { let xv = x[x3b + 8u * b + 2u]; p03 += g0 * xv; p13 += g1 * xv; p23 += g2 * xv; p33 += g3 * xv; }
    }
    {
      let g0 = nlo(u0.w);
      let g1 = nlo(u1.w);
      let g2 = nlo(u2.w);
      let g3 = nlo(u3.w);
      { let xv = x[x0b + 8u * b + 3u]; p00 += g0 * xv; p10 += g1 * xv; p20 += g2 * xv; p30 += g3 * xv; }
      { let xv = x[x1b + 8u * b + 3u]; p01 += g0 * xv; p11 += g1 * xv; p21 += g2 * xv; p31 += g3 * xv; }
      { let xv = x[x2b + 8u * b + 3u]; p02 += g0 * xv; p12 += g1 * xv; p22 += g2 * xv; p32 += g3 * xv; }
      { let xv = x[x3b + 8u * b + 3u]; p03 += g0 * xv; p13 += g1 * xv; p23 += g2 * xv; p33 += g3 * xv; }
    }
    {
      let g0 = nhi(u0.x);
      let g1 = nhi(u1.x);
      let g2 = nhi(u2.x);
      let g3 = nhi(u3.x);
      { let xv = x[x0b + 8u * b + 4u]; p00 += g0 * xv; p10 += g1 * xv; p20 += g2 * xv; p30 += g3 * xv; }
      { let xv = x[x1b + 8u * b + 4u]; p01 += g0 * xv; p11 += g1 * xv; p21 += g2 * xv; p31 += g3 * xv; }
      { let xv = x[x2b + 8u * b + 4u]; p02 += g0 * xv; p12 += g1 * xv; p22 += g2 * xv; p32 += g3 * xv; }
      { let xv = x[x3b + 8u * b + 4u]; p03 += g0 * xv; p13 += g1 * xv; p23 += g2 * xv; p33 += g3 * xv; }
    }
    {
      let g0 = nhi(u0.y);
      let g1 = nhi(u1.y);
      let g2 = nhi(u2.y);
      let g3 = nhi(u3.y);
      { let xv = x[x0b + 8u * b + 5u]; p00 += g0 * xv; p10 += g1 * xv; p20 += g2 * xv; p30 += g3 * xv; }
      { let xv = x[x1b + 8u * b + 5u]; p01 += g0 * xv; p11 += g1 * xv; p21 += g2 * xv; p31 += g3 * xv; }
      { let xv = x[x2b + 8u * b + 5u]; p02 += g0 * xv; p12 += g1 * xv; p22 += g2 * xv; p32 += g3 * xv; }
      { let xv = x[x3b + 8u * b + 5u]; p03 += g0 * xv; p13 += g1 * xv; p23 += g2 * xv; p33 += g3 * xv; }
    }
    {
      let g0 = nhi(u0.z);
      let g1 = nhi(u1.z);
      let g2 = nhi(u2.z);
      let g3 = nhi(u3.z);
      { let xv = x[x0b + 8u * b + 6u]; p00 += g0 * xv; p10 += g1 * xv; p20 += g2 * xv; p30 += g3 * xv; }
      { let xv = x[x1b + 8u * b + 6u]; p01 += g0 * xv; p11 += g1 * xv; p21 += g2 * xv; p31 += g3 * xv; }
      { let xv = x[x2b + 8u * b + 6u]; p02 += g0 * xv; p12 += g1 * xv; p22 += g2 * xv; p32 += g3 * xv; }
      { let xv = x[x3b + 8u * b + 6u]; p03 += g0 * xv; p13 += g1 * xv; p23 += g2 * xv; p33 += g3 * xv; }
    }
    {
      let g0 = nhi(u0.w);
      let g1 = nhi(u1.w);
      let g2 = nhi(u2.w);
      let g3 = nhi(u3.w);
      { let xv = x[x0b + 8u * b + 7u]; p00 += g0 * xv; p10 += g1 * xv; p20 += g2 * xv; p30 += g3 * xv; }
      { let xv = x[x1b + 8u * b + 7u]; p01 += g0 * xv; p11 += g1 * xv; p21 += g2 * xv; p31 += g3 * xv; }
      { let xv = x[x2b + 8u * b + 7u]; p02 += g0 * xv; p12 += g1 * xv; p22 += g2 * xv; p32 += g3 * xv; }
      { let xv = x[x3b + 8u * b + 7u]; p03 += g0 * xv; p13 += g1 * xv; p23 += g2 * xv; p33 += g3 * xv; }
    }
    a00 += d0 * p00;
    a01 += d0 * p01;
    a02 += d0 * p02;
    a03 += d0 * p03;
    a10 += d1 * p10;
    a11 += d1 * p11;
    a12 += d1 * p12;
    a13 += d1 * p13;
    a20 += d2 * p20;
    a21 += d2 * p21;
    a22 += d2 * p22;
    a23 += d2 * p23;
    a30 += d3 * p30;
    a31 += d3 * p31;
    a32 += d3 * p32;
    a33 += d3 * p33;
  }
  for (var tt = 0u; tt < 4u; tt++) {
    let t = t0 + tt;
    if (t > tl) { break; }
    var s: vec4<f32>;
    switch tt {
      case 0u: { s = vec4<f32>(dot(a00, vec4<f32>(1.0)), dot(a10, vec4<f32>(1.0)), dot(a20, vec4<f32>(1.0)), dot(a30, vec4<f32>(1.0))); }
      case 1u: { s = vec4<f32>(dot(a01, vec4<f32>(1.0)), dot(a11, vec4<f32>(1.0)), dot(a21, vec4<f32>(1.0)), dot(a31, vec4<f32>(1.0))); }
      case 2u: { s = vec4<f32>(dot(a02, vec4<f32>(1.0)), dot(a12, vec4<f32>(1.0)), dot(a22, vec4<f32>(1.0)), dot(a32, vec4<f32>(1.0))); }
      default: { s = vec4<f32>(dot(a03, vec4<f32>(1.0)), dot(a13, vec4<f32>(1.0)), dot(a23, vec4<f32>(1.0)), dot(a33, vec4<f32>(1.0))); }
    }
    let ob = t * p.out_stride + p.row_off + r;
    for (var j = 0u; j < 4u; j++) {
      if (r + j < p.n) {
        var v = s[j];
        if (p.has_bias != 0u) { v += bias[p.row_off + r + j]; }
        o[ob + j] = v;
      }
    }
  }
}
