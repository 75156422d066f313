// Attention pass 1 of 3: scores = scale * q . k for every (token, cache position, quad of query heads).
//   q:      [T, nHeads * HD] (vec4)            kc: [maxSeq, nKv * HD] (vec4)
//   scores: [Tc, ctxMax, nQuads] vec4 — lane j = query head h0 + j of the quad (lanes past the group unused)
// A quad = up to HPI (1, 2 or 4) query heads of one kv head (grouped-query attention): each K row is read
// once for all of them. nQuads = nKv * qpk, qpk = ceil(group / HPI). Token t = t0 + wid.z sees positions
// 0..pos0+t. Workgroup w = wid.x + wid.y * nwg.x handles quad w / nBlocks and a block of WG * PPI
// positions; invocation lid takes positions p0 + i * WG (i < PPI), p0 = block start + lid, so every q
// load (uniform across the workgroup) serves PPI K rows, and neighbouring invocations read neighbouring
// rows. No barriers, no workgroup memory (cheap on lavapipe's SIMD-on-CPU, plain streaming on GPUs).

override HD: u32 = 64u; // head dim, a multiple of 4
override HPI: u32 = 4u; // heads per invocation
const WG: u32 = 64u;
const PPI: u32 = 4u; // positions per invocation

@compute @workgroup_size(WG)
fn main(
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let nQuads = params.nKv * params.qpk;
  let nBlocks = (params.ctxMax + WG * PPI - 1u) / (WG * PPI);
  let w = wg_index(wid, nwg);
  let qd = w / nBlocks;
  let p0 = (w % nBlocks) * WG * PPI + lid.x;
  let t = params.t0 + wid.z;
  let last = params.pos0 + t; // last position token t sees
  if (qd >= nQuads || p0 > last) {
    return; // past the end, or only future positions (causal)
  }
  let kvh = qd / params.qpk;
  let h0 = kvh * params.group + (qd % params.qpk) * HPI;
  let n4 = HD / 4u;
  let qb = (t * params.nHeads + h0) * n4;
  // K rows of the PPI positions (clamped to a visible one; stored only when visible)
  let kb0 = (min(p0 + 0u * WG, last) * params.nKv + kvh) * n4;
  let kb1 = (min(p0 + 1u * WG, last) * params.nKv + kvh) * n4;
  let kb2 = (min(p0 + 2u * WG, last) * params.nKv + kvh) * n4;
  let kb3 = (min(p0 + 3u * WG, last) * params.nKv + kvh) * n4;
  var s0 = vec4<f32>(0.0);
  var s1 = vec4<f32>(0.0);
  var s2 = vec4<f32>(0.0);
  var s3 = vec4<f32>(0.0);
  for (var d = 0u; d < n4; d++) {
    let q0 = q[qb + d];
    let q1 = q[qb + n4 + d];
    let q2 = q[qb + 2u * n4 + d];
    let q3 = q[qb + 3u * n4 + d];
    let k0 = kc[kb0 + d];
    let k1 = kc[kb1 + d];
    let k2 = kc[kb2 + d];
    let k3 = kc[kb3 + d];
    s0.x += dot(q0, k0);
    s1.x += dot(q0, k1);
    s2.x += dot(q0, k2);
    s3.x += dot(q0, k3);
    if (HPI > 1u) {
      s0.y += dot(q1, k0);
      s1.y += dot(q1, k1);
      s2.y += dot(q1, k2);
      s3.y += dot(q1, k3);
    }
    if (HPI > 2u) {
      s0.z += dot(q2, k0);
      s0.w += dot(q3, k0);
      s1.z += dot(q2, k1);
      s1.w += dot(q3, k1);
      s2.z += dot(q2, k2);
      s2.w += dot(q3, k2);
      s3.z += dot(q2, k3);
      s3.w += dot(q3, k3);
    }
  }
  let sb = wid.z * params.ctxMax + p0;
  if (p0 + 0u * WG <= last) {
    scores[(sb + 0u * WG) * nQuads + qd] = s0 * params.scale;
  }
  if (p0 + 1u * WG <= last) {
    scores[(sb + 1u * WG) * nQuads + qd] = s1 * params.scale;
  }
  if (p0 + 2u * WG <= last) {
    scores[(sb + 2u * WG) * nQuads + qd] = s2 * params.scale;
  }
  if (p0 + 3u * WG <= last) {
    scores[(sb + 3u * WG) * nQuads + qd] = s3 * params.scale;
  }
}
