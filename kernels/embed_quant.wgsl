// Embedding row gather for a q8 / q4 table (Strata block layout, blocks of 32 along a row,
// nb = ceil(cols / 32), f16 scale d per block):
//   QBITS 8: data i8 [rows, nb*32], x = d * q
//   QBITS 4: data u8 [rows, nb*16]; byte j of block b holds element j (low nibble) and j + 16 (high),
//            x = d * (nibble - 8)
// out[t, c] = table[ids[t], c]; only tokens whose id is in this part's rows rowStart..rowStart+rows-1.
// Workgroups: linear index (wid.x + wid.y * nwg.x) over columns (WG per group), z over tokens.

override WG: u32 = 256u;
override QBITS: u32 = 8u;

struct Params {
  cols: u32,
  rowStart: u32,
  rows: u32,
  nb: u32,
}

@group(0) @binding(0) var<storage, read> data: array<u32>;
@group(0) @binding(1) var<storage, read> scales: array<u32>;
@group(0) @binding(2) var<storage, read_write> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

fn byte_at(i: u32) -> u32 {
  return (data[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
}

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
  let r = id - params.rowStart;
  let b = c / 32u;
  let j = c % 32u;
  let si = r * params.nb + b;
  let d = unpack2x16float(scales[si >> 1u])[si & 1u];
  var q: f32;
  if (QBITS == 8u) {
    let byte = byte_at(r * params.nb * 32u + c);
    q = f32(bitcast<i32>(byte << 24u) >> 24u);
  } else {
    let byte = byte_at(r * params.nb * 16u + b * 16u + (j & 15u));
    q = f32(select(byte & 15u, byte >> 4u, j >= 16u)) - 8.0;
  }
  out[t * cols + c] = d * q;
}
