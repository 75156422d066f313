// Rotary position embedding in place on x: f32 [T, nHeads * headDim]. Pair i < half (half = rotaryDim / 2)
// of each head is (a, b) = (i, i + half) in the rotate-half layout (Hugging Face llama, interleaved = 0)
// or (2i, 2i + 1) in the interleaved layout (GPT-J, GLM, interleaved = 1); token t has position pos0 + t
// and angle theta = pos * invFreq[i] (invFreq: f32 [half], carries any scaling):
//   x[a] <- x[a] cos(theta) - x[b] sin(theta)
//   x[b] <- x[b] cos(theta) + x[a] sin(theta)
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
  var a = base + i;
  var b = base + i + half;
  if (params.interleaved != 0u) {
    a = base + 2u * i;
    b = a + 1u;
  }
  let x1 = x[a];
  let x2 = x[b];
  x[a] = x1 * c - x2 * s;
  x[b] = x2 * c + x1 * s;
}
