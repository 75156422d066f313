/**
 * Seeded, bounded fuzzing of every parser (issue 14): a few hundred mutated
 * inputs each for safetensors, GGUF, llama2.c, manifest.json, config.json,
 * tokenizer.json and chat templates. Every case must succeed or throw a
 * one-line StrataError. `FUZZ_SEED` and `FUZZ_COUNT` change the run;
 * tests/fuzz/campaign.ts runs the large campaign (thousands per parser,
 * in subprocesses that catch hangs and memory).
 */
import assert from "node:assert/strict";
import { allTargets, runCase } from "./_targets.ts";
import { caseRng } from "./_mutate.ts";

const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 14);
const COUNT: Record<string, number> = {
  safetensors: 300,
  gguf: 250,
  llama2c: 300,
  manifest: 400,
  config: 400,
  tokenizer: 200,
  template: 300,
};
const override = Deno.env.get("FUZZ_COUNT");

const tmp = await Deno.makeTempDir({ prefix: "strata-fuzz-" });
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(tmp, { recursive: true });
  } catch { /* gone */ }
});
// A short render time limit and mostly the small synthetic GGUF and llama2.c
// seeds keep the suite fast; the campaign uses the defaults.
const targets = await allTargets(tmp, {
  templateLimits: { timeMs: 200 },
  realShare: 0.05,
});

for (const t of targets) {
  Deno.test(`fuzz ${t.name}: mutated inputs end in success or a one-line StrataError`, async () => {
    const n = override ? Number(override) : COUNT[t.name];
    const crashes: string[] = [];
    let ok = 0, strata = 0;
    for (let i = 0; i < n; i++) {
      const o = await runCase(t, caseRng(SEED, i));
      if (o.kind === "ok") ok++;
      else if (o.kind === "strata") strata++;
      else crashes.push(`case ${i} (FUZZ_SEED=${SEED}): ${o.message}`);
    }
    assert.deepEqual(
      crashes,
      [],
      `${t.name}: ${crashes.length} of ${n} crashed`,
    );
    // A fuzzer whose inputs all fail the same way, or all pass, tests little.
    assert.ok(strata > 0, `${t.name}: no input was rejected`);
    assert.ok(ok + strata === n);
  });
}
