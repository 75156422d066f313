// Rotary position embedding, rotate-half layout (Hugging Face), in place on x: f32 [T, nHeads * headDim].
// Within each head, element i < half (half = rotaryDim / 2) pairs with element i + half; token t has
// position pos0 + t and angle theta = pos * invFreq[i] (invFreq: f32 [half], carries any scaling):
//   x[i]        <- x[i] cos(theta) - x[i + half] sin(theta)
//   x[i + half] <- x[i + half] cos(theta) + x[i] sin(theta)
// Elements rotaryDim..headDim-1 are untouched (partial rotary). One thread per (t, head, i).

override WG: u32 = 64u;

// theta mod 2*pi into [-pi, pi] (Cody-Waite: 2*pi = 6.28125 + 1.9353071795864769e-3, the first part has
// 8 significant bits so k * 6.28125 is exact for k < 2^16), so cos/sin stay accurate (~1e-5 rad) for
// angles up to 2*pi*2^16 (about 411k: any position of today's context lengths, invFreq <= 1).
fn reduce_angle(a: f32) -> f32 {
  let k = round(a * 0.15915494309189535);
  return (a - k * 6.28125) - k * 1.9353071795864769e-3;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * WG;
  if (idx >= params.total) {
    return;
  }
  let half = params.half;
  let i = idx % half;
  let th = idx / half; // t * nHeads + h
  let t = th / params.nHeads;
  let base = th * params.headDim;
  let theta = reduce_angle(f32(params.pos0 + t) * invFreq[i]);
  let c = cos(theta);
  let s = sin(theta);
  let x1 = x[base + i];
  let x2 = x[base + i + half];
  x[base + i] = x1 * c - x2 * s;
  x[base + i + half] = x2 * c + x1 * s;
}
