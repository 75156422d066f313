/**
 * The engine on the GPU kernel family: the engine's reference tests run in a
 * subprocess under `STRATA_KERNELS=gpu`, so every matmul, attention and other
 * op of a forward pass uses the GPU family (matvec_coop, matmul_tiled, the
 * finer attention split) on this adapter, lavapipe included:
 * - tests/engine/forward_test.ts: every tiny-model variant's first-step logits
 *   against the float64 reference and the same greedy ids; streamed vs
 *   resident; prefill vs token-by-token;
 * - tests/engine/quant_test.ts: q8 and q4 splits within their logit bounds and
 *   greedy agreement;
 * - tests/engine/quant_kquant_test.ts: K-quant splits against the reference.
 * The whole tests/engine/ directory also passes this way (run it with
 * `STRATA_KERNELS=gpu deno test -A tests/engine/`; gguf_kquant_test.ts, the
 * llama.cpp GGUF files end to end, takes over a minute on lavapipe and is left
 * to that run: its block kernels are proven in both families by
 * ggml_kernels_test.ts); these files are the ones that compare ids and logits
 * with the reference, kept to them for suite time.
 */
import assert from "node:assert/strict";
import { gpu } from "../_gpu.ts";

const FILES = [
  "tests/engine/forward_test.ts",
  "tests/engine/quant_test.ts",
  "tests/engine/quant_kquant_test.ts",
];

Deno.test({
  name:
    "engine with STRATA_KERNELS=gpu: tiny variants, q8/q4 and K-quant splits give the reference's ids",
  ignore: gpu === null,
  fn: async () => {
    const root = new URL("../../", import.meta.url);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["test", "-A", ...FILES],
      cwd: root,
      env: { STRATA_KERNELS: "gpu", NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) +
      new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text.slice(-4000));
    // the files really ran (a filter or an ignore would pass with nothing run)
    const m = /ok \| (\d+) passed \| 0 failed/.exec(text);
    assert.ok(m && Number(m[1]) >= FILES.length, text.slice(-2000));
  },
});
