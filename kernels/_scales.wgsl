// Block scales of the encodings whose scales live in a separate f16 [n, nb] tensor, bound as `sc: array<u32>`
// (two halves per word, low first). Prepended to the weight kernels for those encodings (lib/gpu/ops/matmul.ts).
fn scale(idx: u32) -> f32 { return h2f(sc[idx >> 1u] >> (16u * (idx & 1u))); }
