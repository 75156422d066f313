// Mixture-of-experts router: per token t, p = softmax(logits[t, :]) over E experts; keep the k largest (equal
// logits by lower index), divided by their sum when params.norm == 1; route[t, e] = p_e when kept, else 0.
// (Mixtral's softmax over the top-k logits is the same as norm == 1.) logits, route: f32 [T, E]; E <= 256.
// One invocation per token (linear index over a possibly 2-D dispatch); the kept set is a 256-bit mask.

const WG: u32 = 64u;
const NONE: u32 = 0xffffffffu;

var<private> kept: array<u32, 8>;

fn is_kept(e: u32) -> bool {
  return (kept[e >> 5u] & (1u << (e & 31u))) != 0u;
}

@compute @workgroup_size(WG)
fn main(
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let t = wg_index(wid, nwg) * WG + lid.x;
  if (t >= params.T) {
    return;
  }
  let E = params.E;
  let base = t * E;
  var mx = logits[base];
  for (var e = 1u; e < E; e++) {
    mx = max(mx, logits[base + e]);
  }
  var sum = 0.0;
  for (var e = 0u; e < E; e++) {
    sum += exp(logits[base + e] - mx);
  }
  for (var w = 0u; w < 8u; w++) {
    kept[w] = 0u;
  }
  var mass = 0.0; // the kept probabilities' sum
  for (var j = 0u; j < params.k; j++) {
    var best = NONE;
    var bv = 0.0;
    for (var e = 0u; e < E; e++) {
      let v = logits[base + e];
      if (!is_kept(e) && (best == NONE || v > bv)) {
        best = e;
        bv = v;
      }
    }
    kept[best >> 5u] |= 1u << (best & 31u);
    mass += exp(bv - mx) / sum;
  }
  let scale = select(1.0, 1.0 / mass, params.norm == 1u);
  for (var e = 0u; e < E; e++) {
    store(base + e, select(0.0, exp(logits[base + e] - mx) / sum * scale, is_kept(e)));
  }
}
