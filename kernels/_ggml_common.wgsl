// Shared helpers of the GGUF block decode snippets (_ggml_<type>.wgsl): the weights are the file's blocks exactly as
// stored, bound by the kernel body as `w: array<u32>` (byte i of the tensor is byte i % 4 of w[i / 4], little-endian).
// A snippet defines QK (elements per block), QB (bytes per block), a struct Blk holding what a block's header decodes
// to, blk(o) reading the header of the block at byte o (once per block and row), and dq8(h, o, g) giving elements
// 8g..8g+7 of that block as two vec4<f32>, decoded in registers.
// A block starts at any even byte offset (18-, 22-, 34-, 110- and 210-byte blocks leave word alignment), so fields are
// read through these helpers; f16 fields always sit at even offsets. h2f (from _common.wgsl) decodes an f16 with integer ops.
fn b8(o: u32) -> u32 { return (w[o >> 2u] >> ((o & 3u) * 8u)) & 0xffu; }
fn b16(o: u32) -> u32 { return (w[o >> 2u] >> ((o & 2u) * 8u)) & 0xffffu; }
fn b32(o: u32) -> u32 {
  let s = (o & 3u) * 8u;
  let a = w[o >> 2u];
  if (s == 0u) { return a; }
  return (a >> s) | (w[(o >> 2u) + 1u] << (32u - s));
}
// the 4 bytes of v as lanes
fn lanes(v: u32) -> vec4<u32> { return vec4<u32>(v, v >> 8u, v >> 16u, v >> 24u) & vec4<u32>(0xffu); }
// low nibbles of the 4 bytes of v (high nibbles: nib(v >> 4u))
fn nib(v: u32) -> vec4<u32> { return vec4<u32>(v, v >> 8u, v >> 16u, v >> 24u) & vec4<u32>(0xfu); }
// bits s..s+3 of v as 4 lanes of 0/1
fn bits4(v: u32, s: u32) -> vec4<u32> { return (vec4<u32>(v >> s) >> vec4<u32>(0u, 1u, 2u, 3u)) & vec4<u32>(1u); }
// byte i of a register copy of header words
fn wb(v: u32, i: u32) -> u32 { return (v >> ((i & 3u) * 8u)) & 0xffu; }
