/**
 * End to end on GGUF files quantized by llama.cpp (K-quants, Q4_1, Q5_x,
 * Q8_0, IQ4_NL, mixed per tensor): `run FILE --prompt-ids … --temperature 0
 * --json` gives the reference greedy ids (computed in float64 from ggml's own
 * dequantization, see tests/fixtures/gguf_llamacpp/README.md and
 * ../shared/models/gguf-kquant/README.md), and the engine's first-step logits
 * are within LOGIT_TOL of the reference top-5.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { gpuTest } from "../_gpu.ts";
import { AutoModel } from "../../lib/engine/auto_model.ts";
import { tempRoot } from "./_models.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const DIRS = [
  new URL("../fixtures/gguf_llamacpp/", import.meta.url).pathname,
  new URL("../../../shared/models/gguf-kquant/", import.meta.url).pathname,
];
/**
 * f32 GPU arithmetic against the float64 reference: measured max 8.7e-6 over
 * all files on lavapipe (logits up to ~30), so 1e-4 leaves room for other GPUs.
 */
const LOGIT_TOL = 1e-4;

interface Run {
  prompt_ids: number[];
  ids: number[];
  first_logits_top5: [number, number][];
}

const files: [string, Run[]][] = [];
for (const dir of DIRS) {
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.name.endsWith(".gguf")) continue;
      const fx = JSON.parse(
        await Deno.readTextFile(join(dir, e.name.replace(/\.gguf$/, ".json"))),
      );
      files.push([join(dir, e.name), fx.runs]);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    console.warn(`skipped: ${dir} is absent`);
  }
}
files.sort((a, b) => a[0].localeCompare(b[0]));

for (const [path, runs] of files) {
  const name = path.split("/").slice(-3).join("/");
  gpuTest(
    `gguf kquant: run ${name} --json gives the reference ids; logits within ${LOGIT_TOL}`,
    async (gpu) => {
      const cache = join(await tempRoot(), "kquant-cache");
      const run = runs[0];
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          CLI,
          "run",
          path,
          "--prompt-ids",
          run.prompt_ids.join(","),
          "--max-new-tokens",
          String(run.ids.length),
          "--temperature",
          "0",
          "--max-seq-len",
          "64",
          "--json",
        ],
        env: {
          XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp",
          STRATA_CACHE: cache,
        },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, stderr);
      const obj = JSON.parse(new TextDecoder().decode(out.stdout));
      assert.deepEqual(obj.ids, run.ids, name);
      const model = await AutoModel.fromPretrained(path, {
        gpu,
        maxSeqLen: 64,
        layerShardsSavingPath: join(cache, `${name.replaceAll("/", "_")}-api`),
      });
      try {
        for (const r of runs) {
          const logits = await model.logits(r.prompt_ids);
          for (const [id, want] of r.first_logits_top5) {
            const err = Math.abs(logits[id] - want);
            assert.ok(
              err < LOGIT_TOL,
              `${name}: logit ${id}: ${logits[id]} vs ${want}`,
            );
          }
        }
      } finally {
        await model.dispose();
      }
    },
  );
}
