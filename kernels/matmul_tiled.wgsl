// Matmul (prefill), GPU family, any weight encoding: out[t, rowOff + r] = dot(x[t, :], W[r, :]) (+ bias) for one row
// part. A workgroup of 64 lanes computes a BN x BT = 32 rows x 32 tokens tile of the output, stepping along k by
// BK = 32: per step the lanes cooperatively decode the weight tile (BN rows x BK values: BN * BK / UNIT units, unit()
// from _unit_<class>.wgsl, neighbouring lanes on neighbouring units of a row) and load the x tile (BT tokens x BK,
// neighbouring lanes on neighbouring 16-byte words) into workgroup memory, k-major (ws [BK][BN], xs [BK][BT]); after a
// barrier each lane accumulates its 4 rows x 4 tokens register block (r x t) over the BK values: 8 workgroup loads
// per 16 multiply-adds. Row tiles fold over workgroup_id.x/y, token tiles are workgroup_id.z. Values past k are zero
// in both tiles; rows past n are clamped for loads and tokens past T are zero, neither is stored.
const BN: u32 = 32u;
const BT: u32 = 32u;
const BK: u32 = 32u;
const WG: u32 = 64u; // (BN / 4) * (BT / 4)
var<workgroup> ws: array<f32, 1024>; // BK * BN
var<workgroup> xs: array<f32, 1024>; // BK * BT

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let n0 = wg_index(wid, nwg) * BN;
  if (n0 >= params.n) { return; }
  let t0 = wid.z * BT;
  let last = params.n - 1u;
  let units = params.k / UNIT;
  let upt = BK / UNIT; // units per row of a weight tile
  let k4 = params.k / 4u;
  let ln = (lid % (BN / 4u)) * 4u; // the lane's first row in the tile
  let lt = (lid / (BN / 4u)) * 4u; // its first token
  var c#r_#t = 0.0;
  for (var k0 = 0u; k0 < params.k; k0 += BK) {
    for (var q = lid; q < BN * upt; q += WG) {
      let rr = q / upt;
      let uu = q % upt;
      let u = k0 / UNIT + uu;
      var v = array<vec4<f32>, {{UV}}>();
      if (u < units) { v = unit(min(n0 + rr, last), u); }
      for (var j = 0u; j < UV; j++) {
        let c = uu * UNIT + 4u * j;
        let e = v[j];
        ws[c * BN + rr] = e.x;
        ws[(c + 1u) * BN + rr] = e.y;
        ws[(c + 2u) * BN + rr] = e.z;
        ws[(c + 3u) * BN + rr] = e.w;
      }
    }
    for (var q = lid; q < BT * (BK / 4u); q += WG) {
      let tt = q / (BK / 4u);
      let c4 = q % (BK / 4u);
      let c = k0 + 4u * c4;
      var e = vec4<f32>(0.0);
      if (t0 + tt < params.t && c < params.k) { e = x[(t0 + tt) * k4 + c / 4u]; }
      xs[(4u * c4) * BT + tt] = e.x;
      xs[(4u * c4 + 1u) * BT + tt] = e.y;
      xs[(4u * c4 + 2u) * BT + tt] = e.z;
      xs[(4u * c4 + 3u) * BT + tt] = e.w;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let wv = vec4<f32>(ws[kk * BN + ln], ws[kk * BN + ln + 1u], ws[kk * BN + ln + 2u], ws[kk * BN + ln + 3u]);
      let xv = vec4<f32>(xs[kk * BT + lt], xs[kk * BT + lt + 1u], xs[kk * BT + lt + 2u], xs[kk * BT + lt + 3u]);
      c#r_#t += wv[#r] * xv[#t];
    }
    workgroupBarrier();
  }
  { let t = t0 + lt + #tu; if (t < params.t) { emit(n0 + ln, #ru, t * params.outStride + params.rowOff + n0 + ln, c#r_#t); } }
}
