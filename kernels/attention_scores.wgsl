// Attention pass 1 of 3: scores = scale * q . k for every (token, cache position, quad of query heads).
//   q:      [T, nHeads * HD] (vec4)            kc: [maxSeq, nKv * HD] (vec4)
//   scores: [Tc, ctxMax, nQuads] vec4 — lane j = query head h0 + j of the quad (lanes past the group unused)
// A quad = up to HPI (1, 2 or 4) query heads of one kv head (grouped-query attention): each K row is read
// once for all of them. nQuads = nKv * qpk, qpk = ceil(group / HPI). Token t = t0 + wid.z sees positions
// 0..pos0+t. Workgroup w = wid.x + wid.y * nwg.x handles quad w / nBlocks and positions
// (w % nBlocks) * WG + lid.x, so the q reads are uniform across the workgroup (broadcast) and each
// invocation streams one K row. No barriers, no workgroup memory (cheap on lavapipe's SIMD-on-CPU).

override HD: u32 = 64u; // head dim, a multiple of 4
override HPI: u32 = 4u; // heads per invocation
const WG: u32 = 64u;

struct Params {
  t0: u32, // first token of this chunk
  pos0: u32,
  nHeads: u32,
  nKv: u32,
  group: u32, // nHeads / nKv
  qpk: u32, // quads per kv head
  ctxMax: u32, // row stride of scores (pos0 + T)
  scale: f32,
}

@group(0) @binding(0) var<storage, read_write> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> kc: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> scores: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let nQuads = params.nKv * params.qpk;
  let nBlocks = (params.ctxMax + WG - 1u) / WG;
  let w = wid.x + wid.y * nwg.x;
  let qd = w / nBlocks;
  let p = (w % nBlocks) * WG + lid.x;
  let t = params.t0 + wid.z;
  if (qd >= nQuads || p > params.pos0 + t) {
    return; // past the end, or a future position (causal)
  }
  let kvh = qd / params.qpk;
  let h0 = kvh * params.group + (qd % params.qpk) * HPI;
  let n4 = HD / 4u;
  let qb = (t * params.nHeads + h0) * n4;
  let kb = (p * params.nKv + kvh) * n4;
  var s = vec4<f32>(0.0);
  for (var d = 0u; d < n4; d++) {
    let k = kc[kb + d];
    s.x += dot(q[qb + d], k);
    if (HPI > 1u) {
      s.y += dot(q[qb + n4 + d], k);
    }
    if (HPI > 2u) {
      s.z += dot(q[qb + 2u * n4 + d], k);
      s.w += dot(q[qb + 3u * n4 + d], k);
    }
  }
  scores[(wid.z * params.ctxMax + p) * nQuads + qd] = s * params.scale;
}
