/**
 * `split --quantize q4k|q5k|q6k|q3k|q2k|q4_1|q5_0|q5_1|iq4_nl`: the
 * projection weights are stored as GGUF blocks (docs/format.md §6): `U8
 * [rows, nb·QB]` with no `.scales` tensor, `strata.quant` {type, shape, block}
 * in each file and the manifest, norms untouched, and every element within
 * the error bound the format allows against the f32 source: for each block,
 * |x − x̂| ≤ one step of the block's range, (max(hi, 0) − min(lo, 0)) / L with
 * L = 3, 7, 15, 31, 63 for 2..6-bit codes, 10 for IQ4_NL's non-linear grid
 * (its widest gap) (the encoder's worst case measured
 * on random data is 0.44–0.78 of that step: half a step of rounding plus the
 * sub-block scales' own 4–8-bit rounding). The blocks are decoded with
 * lib/quant/ggml_blocks.ts, which tests/quant/ggml_blocks_test.ts proves
 * bit-identical to ggml's dequantizer on llama.cpp's bytes. The tiny models'
 * rows (32..172 columns) are shorter than a K-quant block, so every row is
 * one zero-padded block: the padding must decode to 0.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  makeTinyModel,
  readTinyHeader,
  readTinyTensor,
  type TinyModelOptions,
} from "../../lib/testing/tiny_model.ts";
import { openSource } from "../../lib/split/open_source.ts";
import { splitModel } from "../../lib/split/split.ts";
import { encoding, type PackedName } from "../../lib/quant/encoding.ts";
import {
  dequantizeGgml,
  type GgmlBlockType,
} from "../../lib/quant/ggml_blocks.ts";
import { runCli, tempDir } from "./_helpers.ts";

const PROJ =
  /(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.weight$/;
const LEVELS: Record<string, number> = {
  q2k: 3,
  q3k: 7,
  q4k: 15,
  q5k: 31,
  q6k: 63,
  q4_1: 15,
  q5_0: 31,
  q5_1: 31,
  iq4_nl: 10, // non-linear grid: its widest gap (24 of a 240 span) is 1/10 of the range
};

function fileOf(name: string): string {
  if (name === "model.embed_tokens.weight") return "embed.safetensors";
  const m = /^model\.layers\.(\d+)\./.exec(name);
  return m ? `layers/${m[1].padStart(3, "0")}.safetensors` : "head.safetensors";
}

function floats(bytes: Uint8Array, dtype: string): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === "F32") {
    return Float32Array.from(
      { length: bytes.length / 4 },
      (_, i) => dv.getFloat32(4 * i, true),
    );
  }
  if (dtype === "BF16") {
    const u = new DataView(new ArrayBuffer(4));
    return Float32Array.from({ length: bytes.length / 2 }, (_, i) => {
      u.setUint32(0, dv.getUint16(2 * i, true) << 16);
      return u.getFloat32(0);
    });
  }
  throw new Error(`dtype ${dtype}`);
}

async function check(
  opts: TinyModelOptions,
  type: PackedName,
  viaCli: boolean,
): Promise<void> {
  const [dir, cleanup] = await tempDir();
  try {
    const m = await makeTinyModel(join(dir, "hf"), opts);
    const out = join(dir, "shards");
    if (viaCli) {
      const r = await runCli([
        "split",
        m.dir,
        "--out",
        out,
        "--quantize",
        type,
      ]);
      assert.equal(r.code, 0, r.stderr);
    } else {
      const src = await openSource(m.dir);
      try {
        await splitModel(src, { out, quantize: type });
      } finally {
        src.close();
      }
    }
    const enc = encoding(type);
    const ggmlType = enc.gguf!.type as GgmlBlockType;
    const manifest = JSON.parse(
      await Deno.readTextFile(join(out, "manifest.json")),
    );
    assert.equal(manifest.quantization, type);
    let checked = 0;
    for (const t of m.tensors) {
      const q = manifest.quant[t.name];
      const file = join(out, fileOf(t.name));
      const h = await readTinyHeader(file);
      assert.equal(h.tensors[`${t.name}.scales`], undefined, t.name);
      const source = await readTinyTensor(join(m.dir, t.file), t.name);
      if (!PROJ.test(t.name) && t.name !== "lm_head.weight") {
        assert.equal(q, undefined, t.name);
        const got = await readTinyTensor(file, t.name);
        assert.deepEqual(got.bytes, source.bytes, t.name);
        continue;
      }
      const [rows, cols] = t.shape;
      const nb = Math.ceil(cols / enc.blockElems);
      assert.deepEqual(q, {
        type,
        shape: [rows, cols],
        block: enc.blockElems,
      });
      assert.deepEqual(
        JSON.parse(h.metadata["strata.quant"])[t.name],
        q,
        `${t.name}: __metadata__`,
      );
      const packed = await readTinyTensor(file, t.name);
      assert.equal(packed.dtype, "U8");
      assert.deepEqual(packed.shape, [rows, nb * enc.blockBytes]);
      const x = floats(source.bytes, opts.dtype ?? "F32");
      const padded = nb * enc.blockElems;
      const y = dequantizeGgml(ggmlType, packed.bytes, rows * padded);
      for (let r = 0; r < rows; r++) {
        for (let b = 0; b < nb; b++) {
          let lo = 0, hi = 0;
          const c0 = b * enc.blockElems;
          const c1 = Math.min(cols, c0 + enc.blockElems);
          for (let c = c0; c < c1; c++) {
            lo = Math.min(lo, x[r * cols + c]);
            hi = Math.max(hi, x[r * cols + c]);
          }
          const bound = ((hi - lo) / LEVELS[type]) * (1 + 2 ** -8);
          for (let c = c0; c < c0 + enc.blockElems; c++) {
            const got = y[r * padded + c];
            if (c >= cols) {
              assert.ok(
                Math.abs(got) <= bound,
                `${t.name}: padding [${r}, ${c}] = ${got}`,
              );
              continue;
            }
            const want = x[r * cols + c];
            assert.ok(
              Math.abs(got - want) <= bound,
              `${type} ${t.name}[${r}, ${c}]: ${got} vs ${want} (bound ${bound})`,
            );
            checked++;
          }
        }
      }
    }
    assert.ok(checked > 1000, `${checked} elements checked`);
  } finally {
    await cleanup();
  }
}

const CASES: [TinyModelOptions, PackedName, boolean][] = [
  [{ arch: "llama", dtype: "F32" }, "q4k", true],
  [{ arch: "qwen3", dtype: "F32", tied: true }, "q6k", false],
  [{ arch: "mistral", dtype: "BF16" }, "q5k", false],
  [{ arch: "qwen2", dtype: "F32" }, "q3k", false],
  [{ arch: "llama", dtype: "BF16" }, "q2k", false],
  [{ arch: "llama", dtype: "F32" }, "q4_1", false],
  [{ arch: "qwen2", dtype: "F32" }, "q5_0", false],
  [{ arch: "mistral", dtype: "F32" }, "q5_1", false],
  [{ arch: "qwen3", dtype: "BF16" }, "iq4_nl", false],
];

for (const [opts, type, cli] of CASES) {
  Deno.test(
    `split --quantize ${type}: ${opts.arch} ${opts.dtype}${
      opts.tied ? " tied" : ""
    }${cli ? " (CLI)" : ""}`,
    () => check(opts, type, cli),
  );
}
