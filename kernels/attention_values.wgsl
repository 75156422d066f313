// Attention pass 2 of 3: softmax over a split of positions and the weighted sum of V.
//   scores: [Tc, ctxMax, nQuads] vec4 from attention_scores.wgsl     vc: [maxSeq, nKv * HD] (vec4)
// One workgroup per (quad of heads, split s) of token t = t0 + wid.z: w = wid.x + wid.y * nwg.x,
// quad = w % nQuads, s = w / nQuads; ceil(HD / 16) invocations, each owning 4 vec4 of the head dims
// (many dims per invocation amortise the per-position softmax work, which is uniform across the
// workgroup; no barriers). Split s covers positions [s * splitLen, (s + 1) * splitLen) ∩ [0, pos0+t]:
//   m = max_p score, l = Σ_p e^(score - m), acc = Σ_p e^(score - m) v[p]   (per head of the quad, f32)
//   nSplit == 1: out [T, nHeads * HD] (vec4) = acc / l.
//   nSplit > 1:  out = partials: acc [Tc * nHeads * nSplit, HD] then, at vec4 index mlOffset4,
//                (m, l, 0, 0) [Tc * nHeads * nSplit]; attention_merge.wgsl combines them.

override HD: u32 = 64u;
override HPI: u32 = 4u;
const NEG: f32 = -3.0e38;

fn store(tl: u32, h: u32, s: u32, d4: u32, acc: vec4<f32>, m: f32, l: f32) {
  let n4 = HD / 4u;
  if (d4 >= n4) {
    return; // a padding lane of the last invocation
  }
  if (params.nSplit == 1u) {
    out[((params.t0 + tl) * params.nHeads + h) * n4 + d4] = acc / l;
  } else {
    let row = (tl * params.nHeads + h) * params.nSplit + s;
    out[row * n4 + d4] = acc;
    if (d4 == 0u) {
      out[params.mlOffset4 + row] = vec4<f32>(m, l, 0.0, 0.0);
    }
  }
}

@compute @workgroup_size((HD / 4u + 3u) / 4u)
fn main(
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let n4 = HD / 4u;
  let nQuads = params.nKv * params.qpk;
  let w = wg_index(wid, nwg);
  let qd = w % nQuads;
  let s = w / nQuads;
  if (s >= params.nSplit) {
    return;
  }
  let d4 = lid.x * 4u; // first vec4 of this invocation
  let tl = wid.z;
  let t = params.t0 + tl;
  let kvh = qd / params.qpk;
  let j0 = (qd % params.qpk) * HPI; // index of the quad's first head within its group
  let h0 = kvh * params.group + j0;
  let start = s * params.splitLen;
  let end = min(start + params.splitLen, params.pos0 + t + 1u);
  let sb = tl * params.ctxMax * nQuads + qd;

  var m = vec4<f32>(NEG);
  for (var p = start; p < end; p++) {
    m = max(m, scores[sb + p * nQuads]);
  }
  var l = vec4<f32>(0.0);
  let vb0 = kvh * n4 + min(d4 + 0u, n4 - 1u);
  let vb1 = kvh * n4 + min(d4 + 1u, n4 - 1u);
  let vb2 = kvh * n4 + min(d4 + 2u, n4 - 1u);
  let vb3 = kvh * n4 + min(d4 + 3u, n4 - 1u);
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
  let vs = params.nKv * n4;
  for (var p = start; p < end; p++) {
    let e = exp(scores[sb + p * nQuads] - m);
    l += e;
    let vo = p * vs;
    let v0 = vc[vb0 + vo];
    let v1 = vc[vb1 + vo];
    let v2 = vc[vb2 + vo];
    let v3 = vc[vb3 + vo];
    a00 += e.x * v0;
    a01 += e.x * v1;
    a02 += e.x * v2;
    a03 += e.x * v3;
    if (HPI > 1u) {
      a10 += e.y * v0;
      a11 += e.y * v1;
      a12 += e.y * v2;
      a13 += e.y * v3;
    }
    if (HPI > 2u) {
      a20 += e.z * v0;
      a21 += e.z * v1;
      a22 += e.z * v2;
      a23 += e.z * v3;
      a30 += e.w * v0;
      a31 += e.w * v1;
      a32 += e.w * v2;
      a33 += e.w * v3;
    }
  }
  store(tl, h0, s, d4 + 0u, a00, m.x, l.x);
  store(tl, h0, s, d4 + 1u, a01, m.x, l.x);
  store(tl, h0, s, d4 + 2u, a02, m.x, l.x);
  store(tl, h0, s, d4 + 3u, a03, m.x, l.x);
  if (HPI > 1u && j0 + 1u < params.group) {
    store(tl, h0 + 1u, s, d4 + 0u, a10, m.y, l.y);
    store(tl, h0 + 1u, s, d4 + 1u, a11, m.y, l.y);
    store(tl, h0 + 1u, s, d4 + 2u, a12, m.y, l.y);
    store(tl, h0 + 1u, s, d4 + 3u, a13, m.y, l.y);
  }
  if (HPI > 2u && j0 + 2u < params.group) {
    store(tl, h0 + 2u, s, d4 + 0u, a20, m.z, l.z);
    store(tl, h0 + 2u, s, d4 + 1u, a21, m.z, l.z);
    store(tl, h0 + 2u, s, d4 + 2u, a22, m.z, l.z);
    store(tl, h0 + 2u, s, d4 + 3u, a23, m.z, l.z);
  }
  if (HPI > 2u && j0 + 3u < params.group) {
    store(tl, h0 + 3u, s, d4 + 0u, a30, m.w, l.w);
    store(tl, h0 + 3u, s, d4 + 1u, a31, m.w, l.w);
    store(tl, h0 + 3u, s, d4 + 2u, a32, m.w, l.w);
    store(tl, h0 + 3u, s, d4 + 3u, a33, m.w, l.w);
  }
}
