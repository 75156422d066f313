/**
 * `split --quantize q8|q4`: projection weights packed as the contract says
 * (checked with an independent decoder written from docs/format.md), the
 * layout recorded in each file's `__metadata__` and in the manifest, norms
 * and biases untouched, and the error within the bound the format implies.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  makeTinyModel,
  readTinyHeader,
  readTinyTensor,
  type TinyDtype,
  type TinyModelOptions,
} from "../../lib/testing/tiny_model.ts";
import { openSource } from "../../lib/split/open_source.ts";
import { splitModel } from "../../lib/split/split.ts";
import { listFiles, runCli, sha256, tempDir } from "./_helpers.ts";

const PROJ =
  /(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.weight$/;

function fileOf(name: string): string {
  if (name === "model.embed_tokens.weight") return "embed.safetensors";
  const m = /^model\.layers\.(\d+)\./.exec(name);
  return m ? `layers/${m[1].padStart(3, "0")}.safetensors` : "head.safetensors";
}

/** IEEE half → number (independent of lib/quant). */
function f16(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

function decodeFloats(bytes: Uint8Array, dtype: string): Float64Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dtype === "F32" ? bytes.length / 4 : bytes.length / 2;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (dtype === "F32") out[i] = dv.getFloat32(4 * i, true);
    else if (dtype === "F16") out[i] = f16(dv.getUint16(2 * i, true));
    else {
      const u = new DataView(new ArrayBuffer(4));
      u.setUint32(0, dv.getUint16(2 * i, true) << 16);
      out[i] = u.getFloat32(0);
    }
  }
  return out;
}

/** Unpacks q8/q4 into [rows, nb*32] values (padding included). */
function unpack(
  type: "q8" | "q4",
  data: Uint8Array,
  scales: Uint8Array,
  rows: number,
  nb: number,
): Float64Array {
  const sv = new DataView(scales.buffer, scales.byteOffset, scales.byteLength);
  const out = new Float64Array(rows * nb * 32);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nb; b++) {
      const d = f16(sv.getUint16(2 * (r * nb + b), true));
      for (let j = 0; j < 32; j++) {
        let q: number;
        if (type === "q8") {
          const v = data[(r * nb + b) * 32 + j];
          q = v > 127 ? v - 256 : v;
        } else {
          const byte = data[(r * nb + b) * 16 + (j % 16)];
          q = (j < 16 ? byte & 0x0f : byte >> 4) - 8;
        }
        out[(r * nb + b) * 32 + j] = d * q;
      }
    }
  }
  return out;
}

async function checkQuantSplit(
  opts: TinyModelOptions,
  type: "q8" | "q4",
  quantizeEmbedding: boolean,
): Promise<void> {
  const [dir, cleanup] = await tempDir();
  try {
    const m = await makeTinyModel(join(dir, "m"), opts);
    const out = join(dir, "out");
    const src = await openSource(m.dir);
    try {
      await splitModel(src, { out, quantize: type, quantizeEmbedding });
    } finally {
      src.close();
    }
    const manifest = JSON.parse(
      await Deno.readTextFile(join(out, "manifest.json")),
    );
    assert.equal(manifest.quantization, type);
    const expectQuant = m.tensors.filter((t) =>
      PROJ.test(t.name) || t.name === "lm_head.weight" ||
      (quantizeEmbedding && t.name === "model.embed_tokens.weight")
    );
    assert.deepEqual(
      Object.keys(manifest.quant).sort(),
      expectQuant.map((t) => t.name).sort(),
    );
    const metaByFile = new Map<string, Record<string, unknown>>();
    for (const t of m.tensors) {
      const file = join(out, fileOf(t.name));
      const h = await readTinyHeader(file);
      if (!metaByFile.has(file)) {
        metaByFile.set(
          file,
          h.metadata["strata.quant"]
            ? JSON.parse(h.metadata["strata.quant"])
            : {},
        );
      }
      const meta = metaByFile.get(file)!;
      const source = await readTinyTensor(join(m.dir, t.file), t.name);
      const q = manifest.quant[t.name];
      if (!q) {
        // Untouched: same bytes, same dtype.
        const got = await readTinyTensor(file, t.name);
        assert.equal(got.dtype, opts.dtype, t.name);
        assert.deepEqual(got.bytes, source.bytes, t.name);
        assert.equal(meta[t.name], undefined);
        assert.equal(h.tensors[`${t.name}.scales`], undefined);
        continue;
      }
      const expectedType = t.name === "model.embed_tokens.weight" ? "q8" : type;
      const [rows, cols] = t.shape;
      assert.deepEqual(q, {
        type: expectedType,
        shape: [rows, cols],
        block: 32,
      });
      assert.deepEqual(meta[t.name], q, `${t.name}: __metadata__`);
      const nb = Math.ceil(cols / 32);
      const packed = await readTinyTensor(file, t.name);
      const scales = await readTinyTensor(file, `${t.name}.scales`);
      assert.equal(packed.dtype, expectedType === "q8" ? "I8" : "U8");
      assert.deepEqual(packed.shape, [
        rows,
        expectedType === "q8" ? nb * 32 : nb * 16,
      ]);
      assert.equal(scales.dtype, "F16");
      assert.deepEqual(scales.shape, [rows, nb]);
      const x = decodeFloats(source.bytes, opts.dtype);
      const y = unpack(expectedType, packed.bytes, scales.bytes, rows, nb);
      for (let r = 0; r < rows; r++) {
        for (let b = 0; b < nb; b++) {
          let amax = 0;
          for (let j = 0; j < 32 && b * 32 + j < cols; j++) {
            amax = Math.max(amax, Math.abs(x[r * cols + b * 32 + j]));
          }
          // q8: half a step (amax/254) plus f16 rounding of the scale.
          // q4: scale amax/8, 16 levels -8..7: the worst case is the clamped
          // top level (amax/8), plus f16 rounding of the scale.
          const bound = expectedType === "q8"
            ? amax * (1 / 254 + 2 ** -10)
            : amax * (1 / 8 + 2 ** -9);
          for (let j = 0; j < 32; j++) {
            const c = b * 32 + j;
            const got = y[(r * nb + b) * 32 + j];
            if (c >= cols) {
              assert.ok(got === 0, `${t.name}: padding [${r}, ${c}] = ${got}`);
              continue;
            }
            const want = x[r * cols + c];
            assert.ok(
              Math.abs(got - want) <= bound + 1e-12,
              `${t.name}[${r}, ${c}]: ${got} vs ${want} (bound ${bound})`,
            );
          }
        }
      }
    }
  } finally {
    await cleanup();
  }
}

const CASES: [string, TinyDtype, boolean, "q8" | "q4", boolean][] = [
  ["llama", "F32", false, "q8", false],
  ["qwen2", "BF16", false, "q8", true], // cols 32 and 80: padded blocks
  ["qwen3", "F16", true, "q4", false], // hidden 48: padded blocks
  ["mistral", "F32", false, "q4", true],
];

for (const [arch, dtype, tied, type, qe] of CASES) {
  Deno.test(
    `split --quantize ${type}${
      qe ? " --quantize-embedding" : ""
    }: ${arch} ${dtype}${tied ? " tied" : ""}`,
    () =>
      checkQuantSplit(
        { arch: arch as TinyModelOptions["arch"], dtype, tied },
        type,
        qe,
      ),
  );
}

Deno.test("quantizing in row chunks gives the same bytes as one chunk", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const m = await makeTinyModel(join(dir, "m"), {
      arch: "qwen2",
      dtype: "BF16",
    });
    const outs: string[] = [];
    for (const [i, chunk] of ["1000", "100000000"].entries()) {
      const out = join(dir, `out${i}`);
      const r = await runCli(
        [
          "split",
          m.dir,
          "--out",
          out,
          "--quantize",
          "q4",
          "--quantize-embedding",
        ],
        { STRATA_SPLIT_CHUNK_BYTES: chunk },
      );
      assert.equal(r.code, 0, r.stderr);
      outs.push(out);
    }
    for (const f of await listFiles(outs[0])) {
      assert.equal(
        await sha256(join(outs[0], f)),
        await sha256(join(outs[1], f)),
        f,
      );
    }
  } finally {
    await cleanup();
  }
});
