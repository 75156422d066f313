// Causal grouped-query attention over an f32 KV cache, online (flash-style) softmax in f32.
//   q:   [T, nHeads * HD]          (token t has position pos0 + t and sees cache positions 0..pos0+t)
//   kc:  [maxSeq, nKv * HD]        vc: [maxSeq, nKv * HD]
// One workgroup per (token t = wid.z, group of GB query heads sharing one kv head, split s); the linear
// index wid.x + wid.y * nwg.x = s * nHeadGroups + headGroup. Split s covers positions
// [s * splitLen, (s + 1) * splitLen) ∩ [0, pos0 + t]. K/V rows are read once per workgroup for all GB
// heads. Per chunk of 64 positions: thread j scores position j against the GB heads, the running max m,
// sum l and accumulator acc (all in workgroup memory) are rescaled by exp(m_old - m_new).
//   nSplit == 1: out = [T, nHeads * HD], the normalised result acc / l.
//   nSplit > 1:  out = partials: acc [T * nHeads * nSplit, HD] (unnormalised), then at float offset
//                mlOffset the pairs (m, l) [T * nHeads * nSplit, 2]; attention_merge.wgsl combines them.

override HD: u32 = 64u; // head dim
override GB: u32 = 1u; // query heads per workgroup (divides nHeads / nKv; at most 8)
const WG: u32 = 64u; // threads = positions per chunk
const NEG: f32 = -3.0e38; // "minus infinity" that keeps exp() and subtraction finite

struct Params {
  T: u32,
  pos0: u32,
  nHeads: u32,
  nKv: u32,
  group: u32, // nHeads / nKv
  nSplit: u32,
  splitLen: u32, // multiple of WG
  scale: f32,
  mlOffset: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> q: array<f32>;
@group(0) @binding(1) var<storage, read_write> kc: array<f32>;
@group(0) @binding(2) var<storage, read_write> vc: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

var<workgroup> q_s: array<f32, GB * HD>; // scaled queries of the GB heads
var<workgroup> acc_s: array<f32, GB * HD>;
var<workgroup> p_s: array<f32, GB * WG>; // scores, then probabilities, of the current chunk
var<workgroup> m_s: array<f32, 8>;
var<workgroup> l_s: array<f32, 8>;
var<workgroup> corr_s: array<f32, 8>;

@compute @workgroup_size(WG)
fn main(
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let nHeadGroups = params.nHeads / GB;
  let linear = wid.x + wid.y * nwg.x;
  if (linear >= nHeadGroups * params.nSplit) {
    return;
  }
  let t = wid.z;
  let hg = linear % nHeadGroups;
  let s = linear / nHeadGroups;
  let h0 = hg * GB; // first query head of this workgroup
  let kvh = h0 / params.group;
  let qStride = params.nHeads * HD;
  let kvStride = params.nKv * HD;
  let ctx = params.pos0 + t + 1u; // positions visible to token t
  let start = s * params.splitLen;
  let end = min(start + params.splitLen, ctx);
  let j = lid.x;

  for (var e = j; e < GB * HD; e += WG) {
    q_s[e] = q[t * qStride + h0 * HD + e] * params.scale;
    acc_s[e] = 0.0;
  }
  if (j < GB) {
    m_s[j] = NEG;
    l_s[j] = 0.0;
  }
  workgroupBarrier();

  for (var c = start; c < end; c += WG) {
    // 1. scores of position c + j for the GB heads
    let p = c + j;
    var sc: array<f32, 8>;
    for (var g = 0u; g < GB; g++) {
      sc[g] = NEG;
    }
    if (p < end) {
      for (var g = 0u; g < GB; g++) {
        sc[g] = 0.0;
      }
      let kb = p * kvStride + kvh * HD;
      for (var d = 0u; d < HD; d++) {
        let kd = kc[kb + d];
        for (var g = 0u; g < GB; g++) {
          sc[g] += q_s[g * HD + d] * kd;
        }
      }
    }
    for (var g = 0u; g < GB; g++) {
      p_s[g * WG + j] = sc[g];
    }
    workgroupBarrier();
    // 2. new running max per head
    if (j < GB) {
      var mx = m_s[j];
      for (var i = 0u; i < WG; i++) {
        mx = max(mx, p_s[j * WG + i]);
      }
      corr_s[j] = exp(m_s[j] - mx);
      m_s[j] = mx;
    }
    workgroupBarrier();
    // 3. probabilities (masked positions: exp(NEG - m) = 0)
    for (var g = 0u; g < GB; g++) {
      p_s[g * WG + j] = exp(p_s[g * WG + j] - m_s[g]);
    }
    workgroupBarrier();
    // 4. running sum and accumulator
    if (j < GB) {
      var sum = 0.0;
      for (var i = 0u; i < WG; i++) {
        sum += p_s[j * WG + i];
      }
      l_s[j] = l_s[j] * corr_s[j] + sum;
    }
    let n = min(WG, end - c);
    for (var d = j; d < HD; d += WG) {
      var a: array<f32, 8>;
      for (var g = 0u; g < GB; g++) {
        a[g] = acc_s[g * HD + d] * corr_s[g];
      }
      var vb = c * kvStride + kvh * HD + d;
      for (var i = 0u; i < n; i++) {
        let v = vc[vb];
        for (var g = 0u; g < GB; g++) {
          a[g] += p_s[g * WG + i] * v;
        }
        vb += kvStride;
      }
      for (var g = 0u; g < GB; g++) {
        acc_s[g * HD + d] = a[g];
      }
    }
    workgroupBarrier();
  }

  if (params.nSplit == 1u) {
    for (var e = j; e < GB * HD; e += WG) {
      out[t * qStride + h0 * HD + e] = acc_s[e] / l_s[e / HD];
    }
  } else {
    // partial row index of (t, head h0 + g, split s) = ((t * nHeads + h0 + g) * nSplit + s)
    for (var e = j; e < GB * HD; e += WG) {
      let g = e / HD;
      let row = (t * params.nHeads + h0 + g) * params.nSplit + s;
      out[row * HD + e % HD] = acc_s[e];
    }
    if (j < GB) {
      let row = (t * params.nHeads + h0 + j) * params.nSplit + s;
      out[params.mlOffset + row * 2u] = m_s[j];
      out[params.mlOffset + row * 2u + 1u] = l_s[j];
    }
  }
}
