/**
 * A real trained model through the streaming engine: llama2.c's
 * stories260K (../shared), split from the llama2.c checkpoint and run with a
 * budget that streams every layer through one slot, reproduces llama2.c's
 * published greedy output (expected_greedy_t0_256steps.txt). Skips when
 * ../shared or a WebGPU adapter is absent.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { gpu, gpuTest } from "../_gpu.ts";
import { AutoModel } from "../../lib/engine/auto_model.ts";
import { StreamingDetokenizer } from "../../lib/text/detokenizer.ts";
import { tempRoot } from "./_models.ts";

const DIR =
  new URL("../../../shared/models/stories260K/", import.meta.url).pathname;
let have = false;
try {
  have = (await Deno.stat(join(DIR, "stories260K.bin"))).isFile;
} catch {
  have = false;
}
if (!have) console.log(`stories_test: skipped (${DIR} is absent)`);

if (have) {
  gpuTest(
    "engine: stories260K streamed through one slot = llama2.c's greedy output",
    async (g) => {
      const expected = await Deno.readTextFile(
        join(DIR, "expected_greedy_t0_256steps.txt"),
      );
      const out = join(await tempRoot(), "stories260K-shards");
      const probe = await AutoModel.fromPretrained(
        join(DIR, "stories260K.bin"),
        {
          gpu: g,
          tokenizer: join(DIR, "tok512.bin"),
          layerShardsSavingPath: out,
          maxSeqLen: 256,
        },
      );
      const p = probe.plan;
      await probe.dispose();
      const budget = p.kvBytes + p.headBytes + p.activationBytes +
        p.residentBytes / p.resident.length + 1024;
      const m = await AutoModel.fromPretrained(out, {
        gpu: g,
        gpuMemory: budget,
        maxSeqLen: 256,
      });
      try {
        assert.equal(m.plan.resident.length, 0);
        const prompt = m.encode(""); // BOS only
        const detok = new StreamingDetokenizer(m.tokenizer!, {
          prefixIds: prompt,
        });
        let text = "";
        for await (
          const id of m.stream(prompt, { maxNewTokens: 256, temperature: 0 })
        ) text += detok.push(id);
        text += detok.flush();
        assert.ok(m.lastStats!.peakGpuBytes <= budget);
        assert.equal(text + "\n", expected);
      } finally {
        await m.dispose();
      }
    },
  );
}

if (!gpu) console.log("stories_test: skipped (no WebGPU adapter)");
