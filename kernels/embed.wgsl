// Embedding row gather for an f32 / f16 / bf16 table: out[t, c] = table[ids[t], c] as f32.
// The table may be split into row ranges (parts); this dispatch covers rows rowStart..rowStart+rows-1 and
// writes only the tokens whose id falls in that range. The table is read as u32 words (no shader-f16
// needed): DTYPE 0 = f32, 1 = f16 (two per word, low half first), 2 = bf16.
// Workgroups: linear index (wid.x + wid.y * nwg.x) over columns (WG per group), z over tokens.

override WG: u32 = 256u;
override DTYPE: u32 = 0u;

struct Params {
  cols: u32,
  rowStart: u32,
  rows: u32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> table: array<u32>;
@group(0) @binding(1) var<storage, read_write> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let c = (wid.x + wid.y * nwg.x) * WG + lid.x;
  let t = wid.z;
  let cols = params.cols;
  if (c >= cols) {
    return;
  }
  let id = ids[t];
  if (id < params.rowStart || id - params.rowStart >= params.rows) {
    return;
  }
  let e = (id - params.rowStart) * cols + c; // element index within the part
  var v: f32;
  if (DTYPE == 0u) {
    v = bitcast<f32>(table[e]);
  } else if (DTYPE == 1u) {
    v = unpack2x16float(table[e >> 1u])[e & 1u];
  } else {
    let w = table[e >> 1u];
    v = bitcast<f32>(select(w << 16u, w & 0xffff0000u, (e & 1u) == 1u));
  }
  out[t * cols + c] = v;
}
