// Attention pass 2 of 3: softmax over a split of positions and the weighted sum of V.
//   scores: [Tc, ctxMax, nQuads] vec4 from attention_scores.wgsl     vc: [maxSeq, nKv * HD] (vec4)
// One workgroup per (quad of heads, split s) of token t = t0 + wid.z: w = wid.x + wid.y * nwg.x,
// quad = w % nQuads, s = w / nQuads; HD/4 invocations, one per 4 dims d4 (score reads are uniform).
// Split s covers positions [s * splitLen, (s + 1) * splitLen) ∩ [0, pos0+t]:
//   m = max_p score, l = Σ_p e^(score - m), acc = Σ_p e^(score - m) v[p]   (per head of the quad, f32)
// Every invocation recomputes m and the exponentials (uniform across the workgroup, no barriers).
//   nSplit == 1: out [T, nHeads * HD] (vec4) = acc / l.
//   nSplit > 1:  out = partials: acc [Tc * nHeads * nSplit, HD] then, at vec4 index mlOffset4,
//                (m, l, 0, 0) [Tc * nHeads * nSplit]; attention_merge.wgsl combines them.

override HD: u32 = 64u;
override HPI: u32 = 4u;
const NEG: f32 = -3.0e38;

struct Params {
  t0: u32,
  pos0: u32,
  nHeads: u32,
  nKv: u32,
  group: u32,
  qpk: u32,
  ctxMax: u32,
  nSplit: u32,
  splitLen: u32,
  mlOffset4: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> scores: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> vc: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> params: Params;

fn store(tl: u32, h: u32, s: u32, d4: u32, acc: vec4<f32>, m: f32, l: f32) {
  let n4 = HD / 4u;
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

@compute @workgroup_size(HD / 4u)
fn main(
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let n4 = HD / 4u;
  let nQuads = params.nKv * params.qpk;
  let w = wid.x + wid.y * nwg.x;
  let d4 = lid.x;
  let qd = w % nQuads;
  let s = w / nQuads;
  if (s >= params.nSplit) {
    return;
  }
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
  var a0 = vec4<f32>(0.0);
  var a1 = vec4<f32>(0.0);
  var a2 = vec4<f32>(0.0);
  var a3 = vec4<f32>(0.0);
  var vb = kvh * n4 + d4;
  let vs = params.nKv * n4;
  for (var p = start; p < end; p++) {
    let e = exp(scores[sb + p * nQuads] - m);
    l += e;
    let v = vc[vb + p * vs];
    a0 += e.x * v;
    if (HPI > 1u) {
      a1 += e.y * v;
    }
    if (HPI > 2u) {
      a2 += e.z * v;
      a3 += e.w * v;
    }
  }
  store(tl, h0, s, d4, a0, m.x, l.x);
  if (HPI > 1u && j0 + 1u < params.group) {
    store(tl, h0 + 1u, s, d4, a1, m.y, l.y);
  }
  if (HPI > 2u && j0 + 2u < params.group) {
    store(tl, h0 + 2u, s, d4, a2, m.z, l.z);
  }
  if (HPI > 2u && j0 + 3u < params.group) {
    store(tl, h0 + 3u, s, d4, a3, m.w, l.w);
  }
}
