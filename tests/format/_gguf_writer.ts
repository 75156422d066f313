/**
 * A minimal GGUF writer for tests, written from the layout table in
 * ../shared/FORMATS.md §2.1 (independent of lib/format/gguf.ts).
 *
 * @module
 */

/** A metadata key, its type and value. */
export type KV =
  | [string, "str", string]
  | [string, "u32", number]
  | [string, "f32", number]
  | [string, "bool", boolean]
  | [
    string,
    "strs",
    string[],
  ]
  | [string, "f32s", number[]]
  | [string, "i32s", number[]];
/** A tensor to write: dims ne0 first, ggml type id, raw bytes. */
export interface TensorSpec {
  name: string;
  dims: number[]; // ne0 first
  type: number;
  data: Uint8Array;
}

class Bytes {
  parts: number[] = [];
  u8(v: number) {
    this.parts.push(v & 255);
  }
  u32(v: number) {
    for (let i = 0; i < 4; i++) this.u8(v >>> (8 * i));
  }
  u64(v: number | bigint) {
    let b = BigInt(v);
    for (let i = 0; i < 8; i++) {
      this.u8(Number(b & 255n));
      b >>= 8n;
    }
  }
  f32(v: number) {
    const a = new Uint8Array(new Float32Array([v]).buffer);
    a.forEach((x) => this.u8(x));
  }
  str(s: string) {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    b.forEach((x) => this.u8(x));
  }
  bytes(b: Uint8Array) {
    b.forEach((x) => this.u8(x));
  }
}

/** A GGUF file's bytes. */
export function writeGguf(
  kvs: KV[],
  tensors: TensorSpec[],
  opts: { version?: number; alignment?: number } = {},
): Uint8Array {
  const w = new Bytes();
  w.bytes(new TextEncoder().encode("GGUF"));
  w.u32(opts.version ?? 3);
  w.u64(tensors.length);
  w.u64(kvs.length);
  for (const [k, t, v] of kvs) {
    w.str(k);
    if (t === "str") (w.u32(8), w.str(v as string));
    else if (t === "u32") (w.u32(4), w.u32(v as number));
    else if (t === "f32") (w.u32(6), w.f32(v as number));
    else if (t === "bool") (w.u32(7), w.u8(v ? 1 : 0));
    else if (t === "strs") {
      (w.u32(9),
        w.u32(8),
        w.u64((v as string[]).length),
        (v as string[]).forEach((s) => w.str(s)));
    } else if (t === "f32s") {
      (w.u32(9),
        w.u32(6),
        w.u64((v as number[]).length),
        (v as number[]).forEach((s) => w.f32(s)));
    } else {(w.u32(9),
        w.u32(5),
        w.u64((v as number[]).length),
        (v as number[]).forEach((s) => w.u32(s)));}
  }
  const align = opts.alignment ?? 32;
  let off = 0;
  const offs: number[] = [];
  for (const t of tensors) {
    offs.push(off);
    off = Math.ceil((off + t.data.length) / align) * align;
  }
  tensors.forEach((t, i) => {
    w.str(t.name);
    w.u32(t.dims.length);
    t.dims.forEach((d) => w.u64(d));
    w.u32(t.type);
    w.u64(offs[i]);
  });
  while (w.parts.length % align) w.u8(0);
  const start = w.parts.length;
  tensors.forEach((t, i) => {
    while (w.parts.length < start + offs[i]) w.u8(0);
    w.bytes(t.data);
  });
  return new Uint8Array(w.parts);
}
