// The reference over split shard directories: an unquantized split gives the
// very same logits as the checkpoint; q8/q4 splits dequantize (with the
// reference's own decoder, written from the layout definition) within the
// error bound the format implies. With ../shared, the stories260K GGUF split
// to shards reproduces llama2.c's greedy text (GGUF source + split + reference).
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { makeTinyModel } from "../../lib/testing/tiny_model.ts";
import { openSource } from "../../lib/split/open_source.ts";
import { splitModel } from "../../lib/split/split.ts";
import { globalTensors, layerTensors } from "../../lib/model/tensors.ts";
import {
  loadReferenceModel,
  referenceForward,
  referenceGreedy,
} from "../reference/forward.ts";

async function split(src: string, out: string, quantize: "none" | "q8" | "q4") {
  const s = await openSource(src);
  try {
    await splitModel(s, { out, quantize });
  } finally {
    s.close();
  }
}

Deno.test("reference: split shards (none, q8, q4) against the source checkpoint", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "strata-ref-shards-" });
  try {
    const src = `${tmp}/hf`;
    await makeTinyModel(src, { arch: "qwen3", dtype: "F32", tied: false });
    const ref = await loadReferenceModel(src);
    const tokens = [1, 17, 4, 88, 250];
    const want = referenceForward(ref.weights, ref.config, tokens);
    const shapes = new Map<string, number[]>();
    for (let i = 0; i < ref.config.numLayers; i++) {
      for (const t of layerTensors(ref.config, i)) shapes.set(t.name, t.shape);
    }
    for (const t of globalTensors(ref.config)) shapes.set(t.name, t.shape);
    for (const q of ["none", "q8", "q4"] as const) {
      const out = `${tmp}/${q}`;
      await split(src, out, q);
      const sh = await loadReferenceModel(out);
      assert.deepEqual(sh.config, ref.config, `${q}: manifest config`);
      assert.deepEqual(
        [...sh.weights.keys()].sort(),
        [...ref.weights.keys()].sort(),
      );
      let quantized = 0;
      for (const [name, w] of ref.weights) {
        const got = sh.weights.get(name)!;
        assert.equal(got.length, w.length, name);
        const is2d = /_proj\.weight$|lm_head/.test(name) && q !== "none";
        if (!is2d) {
          assert.deepEqual(
            Array.from(got),
            Array.from(w),
            `${q}: ${name} unchanged`,
          );
          continue;
        }
        quantized++;
        const cols = shapes.get(name)![1]; // nn.Linear [out, in]
        // per block of 32 along a row, d = max|x|/127 (q8) or max|x|/8 (q4), stored as f16 (relative
        // rounding <= 2^-11): |err| <= d/2 (q8) or d (q4: one level of clamping at +8) plus
        // |q| * |d_f16 - d| with |q| <= 127 (q8) or 8 (q4)
        for (let r = 0; r < w.length / cols; r++) {
          for (let b = 0; b < cols; b += 32) {
            let amax = 0;
            for (let c = b; c < Math.min(cols, b + 32); c++) {
              amax = Math.max(amax, Math.abs(w[r * cols + c]));
            }
            const d = q === "q8" ? amax / 127 : amax / 8;
            const bound =
              (q === "q8" ? d / 2 + 127 * d * 2 ** -11 : d + 8 * d * 2 ** -11) +
              1e-7;
            for (let c = b; c < Math.min(cols, b + 32); c++) {
              const e = Math.abs(got[r * cols + c] - w[r * cols + c]);
              assert.ok(
                e <= bound,
                `${q} ${name} [${r},${c}] err ${e} > ${bound}`,
              );
            }
          }
        }
      }
      if (q !== "none") assert.ok(quantized > 0);
      const logits = referenceForward(sh.weights, sh.config, tokens);
      let maxErr = 0, maxAbs = 0;
      for (let t = 0; t < tokens.length; t++) {
        for (let i = 0; i < logits[t].length; i++) {
          maxErr = Math.max(maxErr, Math.abs(logits[t][i] - want[t][i]));
          maxAbs = Math.max(maxAbs, Math.abs(want[t][i]));
        }
      }
      if (q === "none") assert.equal(maxErr, 0);
      console.log(
        `reference ${q}: max |logit error| ${
          maxErr.toExponential(2)
        } (max |logit| ${maxAbs.toFixed(3)})`,
      );
      assert.ok(
        maxErr <= (q === "q8" ? 0.05 : 0.5) * maxAbs,
        `${q}: logit error ${maxErr}`,
      );
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

const GGUF = fileURLToPath(
  new URL("../../../shared/models/gguf/stories260K.gguf", import.meta.url),
);
const EXPECTED = fileURLToPath(
  new URL(
    "../../../shared/models/stories260K/expected_greedy_t0_256steps.txt",
    import.meta.url,
  ),
);
const TOK = fileURLToPath(
  new URL("../../../shared/models/stories260K/tok512.bin", import.meta.url),
);
let haveShared = true;
try {
  await Deno.stat(GGUF);
} catch {
  haveShared = false;
  console.log(
    "reference_shards_test: stories260K GGUF check skipped, ../shared is absent",
  );
}

Deno.test({
  name:
    "reference: stories260K.gguf split to shards reproduces llama2.c's greedy text",
  ignore: !haveShared,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "strata-ref-gguf-" });
    try {
      await split(GGUF, `${tmp}/shards`, "none");
      const { config, weights } = await loadReferenceModel(`${tmp}/shards`);
      const ids = referenceGreedy(weights, config, [1], 64);
      // decode with tok512.bin (llama2.c rules)
      const buf = await Deno.readFile(TOK);
      const dv = new DataView(buf.buffer);
      const pieces: Uint8Array[] = [];
      for (let off = 4, i = 0; i < 512; i++) {
        const len = dv.getInt32(off + 4, true);
        pieces.push(buf.subarray(off + 8, off + 8 + len));
        off += 8 + len;
      }
      const bytes: number[] = [];
      let prev = 1;
      for (const id of ids) {
        let p = pieces[id];
        if (prev === 1 && p[0] === 0x20) p = p.subarray(1);
        const m = /^<0x([0-9A-F]{2})>$/.exec(new TextDecoder().decode(p));
        if (m) bytes.push(parseInt(m[1], 16));
        else bytes.push(...p);
        prev = id;
      }
      const text = new TextDecoder().decode(new Uint8Array(bytes));
      const expected = await Deno.readTextFile(EXPECTED);
      assert.ok(text.length > 100);
      assert.ok(expected.startsWith(text), `got: ${text}`);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
