// Top-K (K <= 64) of a list of (value f32, index u32) items: descending by value, equal values by lower index.
//   MODE 0: src = logits f32 [n] (read as u32 bits), item i = (src[i], i)
//   MODE 1: src = pairs [n, 2] written by an earlier pass, item i = (src[2i], src[2i + 1])
// Invocation j of `lists` (linear index (wid.x + wid.y * nwg.x) * WG + lid.x) takes items j, j + lists,
// j + 2 * lists, ... (neighbouring invocations read neighbouring items), keeps its best K in a private
// min-heap (root = worst kept; most items are rejected by one compare with the root), then heap-sorts
// them and writes K pairs (bitcast<u32>(value), index) at dst[(j * K + r) * 2 + {0, 1}], best first.
// No barriers and no workgroup memory; the launcher repeats MODE 1 passes until one list is left.
// Missing entries (fewer than K items) are (-inf, 0xffffffff).

override K: u32 = 1u;
override MODE: u32 = 0u;
const WG: u32 = 64u;
const NONE: u32 = 0xffffffffu;

var<private> hv: array<f32, 64>;
var<private> hi: array<u32, 64>;

// a ranks before b
fn better(av: f32, ai: u32, bv: f32, bi: u32) -> bool {
  return av > bv || (av == bv && ai < bi);
}

// restores the min-heap (by rank) of the first `size` entries below entry c
fn sift_down(start: u32, size: u32) {
  var c = start;
  loop {
    let l = 2u * c + 1u;
    if (l >= size) {
      break;
    }
    var w = l; // the worse child
    let r = l + 1u;
    if (r < size && better(hv[l], hi[l], hv[r], hi[r])) {
      w = r;
    }
    if (!better(hv[c], hi[c], hv[w], hi[w])) {
      break; // c is already worse than (or equal to) both children
    }
    let tv = hv[c];
    let ti = hi[c];
    hv[c] = hv[w];
    hi[c] = hi[w];
    hv[w] = tv;
    hi[w] = ti;
    c = w;
  }
}

@compute @workgroup_size(WG)
fn main(
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let j = wg_index(wid, nwg) * WG + lid.x;
  let lists = params.lists;
  if (j >= lists) {
    return;
  }
  let ninf = bitcast<f32>(0xff800000u);
  for (var r = 0u; r < K; r++) {
    hv[r] = ninf;
    hi[r] = NONE;
  }
  for (var i = j; i < params.n; i += lists) {
    var v: f32;
    var idx: u32;
    if (MODE == 0u) {
      v = bitcast<f32>(src[i]);
      idx = i;
    } else {
      v = bitcast<f32>(src[2u * i]);
      idx = src[2u * i + 1u];
    }
    if (better(v, idx, hv[0], hi[0])) {
      hv[0] = v;
      hi[0] = idx;
      sift_down(0u, K);
    }
  }
  // heap sort: pop the worst into the last free output slot
  let base = j * K;
  for (var size = K; size > 0u; size--) {
    let o = (base + size - 1u) * 2u;
    dst[o] = bitcast<u32>(hv[0]);
    dst[o + 1u] = hi[0];
    hv[0] = hv[size - 1u];
    hi[0] = hi[size - 1u];
    sift_down(0u, size - 1u);
  }
}
