// Top-K (K <= 64) of a list of (value f32, index u32) items, descending by value, equal values by lower
// index first. Each workgroup takes `chunk` consecutive items and writes its K best as pairs
// (bitcast<u32>(value), index) at dst[(workgroup * K + r) * 2 + {0, 1}].
//   MODE 0: src = logits f32 [n] (read as u32 bits), item i = (src[i], i)
//   MODE 1: src = pairs [n, 2] from a previous MODE 0 pass, item i = (src[2i], src[2i + 1])
// Each thread keeps a sorted private list of its best K (insertion, most items rejected by one compare);
// then K rounds of a workgroup arg-max over the threads' list heads; the winner pops its head.
// Missing entries (fewer than K items) are (-inf, 0xffffffff).

override K: u32 = 1u;
override MODE: u32 = 0u;
const WG: u32 = 256u;
const NONE: u32 = 0xffffffffu;

struct Params {
  n: u32, // items
  chunk: u32, // items per workgroup
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

var<workgroup> rv: array<f32, WG>;
var<workgroup> ri: array<u32, WG>;
var<workgroup> rt: array<u32, WG>;

fn better(av: f32, ai: u32, bv: f32, bi: u32) -> bool {
  return av > bv || (av == bv && ai < bi);
}

@compute @workgroup_size(WG)
fn main(
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let wg = wid.x + wid.y * nwg.x;
  let begin = wg * params.chunk;
  if (begin >= params.n) {
    return;
  }
  let end = min(begin + params.chunk, params.n);
  let ninf = bitcast<f32>(0xff800000u);

  var lv: array<f32, 64>;
  var li: array<u32, 64>;
  for (var r = 0u; r < K; r++) {
    lv[r] = ninf;
    li[r] = NONE;
  }
  for (var i = begin + lid.x; i < end; i += WG) {
    var v: f32;
    var idx: u32;
    if (MODE == 0u) {
      v = bitcast<f32>(src[i]);
      idx = i;
    } else {
      v = bitcast<f32>(src[2u * i]);
      idx = src[2u * i + 1u];
    }
    if (better(v, idx, lv[K - 1u], li[K - 1u])) {
      var p = K - 1u;
      while (p > 0u && better(v, idx, lv[p - 1u], li[p - 1u])) {
        lv[p] = lv[p - 1u];
        li[p] = li[p - 1u];
        p--;
      }
      lv[p] = v;
      li[p] = idx;
    }
  }

  var head = 0u;
  for (var r = 0u; r < K; r++) {
    if (head < K) {
      rv[lid.x] = lv[head];
      ri[lid.x] = li[head];
    } else {
      rv[lid.x] = ninf;
      ri[lid.x] = NONE;
    }
    rt[lid.x] = lid.x;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
      if (lid.x < s && better(rv[lid.x + s], ri[lid.x + s], rv[lid.x], ri[lid.x])) {
        rv[lid.x] = rv[lid.x + s];
        ri[lid.x] = ri[lid.x + s];
        rt[lid.x] = rt[lid.x + s];
      }
      workgroupBarrier();
    }
    if (lid.x == 0u) {
      dst[(wg * K + r) * 2u] = bitcast<u32>(rv[0]);
      dst[(wg * K + r) * 2u + 1u] = ri[0];
    }
    if (rt[0] == lid.x) {
      head++;
    }
    workgroupBarrier();
  }
}
