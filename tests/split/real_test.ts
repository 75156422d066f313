/**
 * Splitting the real stories260K model from ../shared: the GGUF file and the
 * llama2.c checkpoint hold bit-identical weights, so after both sources map
 * them to Hugging Face layout the embedding and every layer shard must be
 * byte-identical. Skipped when ../shared is absent.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, sha256, tempDir } from "./_helpers.ts";

const SHARED = new URL("../../../shared/models/", import.meta.url).pathname;
const GGUF = join(SHARED, "gguf/stories260K.gguf");
const BIN = join(SHARED, "stories260K/stories260K.bin");
const TOK = join(SHARED, "stories260K/tok512.bin");

let present = true;
try {
  await Deno.stat(GGUF);
  await Deno.stat(BIN);
  await Deno.stat(TOK);
} catch {
  present = false;
  console.log("tests/split/real_test.ts: ../shared/models absent, skipping");
}

Deno.test({
  name: "split stories260K: GGUF and llama2.c give identical layer shards",
  ignore: !present,
  fn: async () => {
    const [dir, cleanup] = await tempDir();
    try {
      const a = join(dir, "gguf"), b = join(dir, "l2c");
      const [ra, rb] = await Promise.all([
        runCli(["split", GGUF, "--out", a]),
        runCli(["split", BIN, "--tokenizer", TOK, "--out", b]),
      ]);
      assert.equal(ra.code, 0, ra.stderr);
      assert.equal(rb.code, 0, rb.stderr);
      const files = ["embed.safetensors", "tokenizer.json"];
      for (let i = 0; i < 5; i++) files.push(`layers/00${i}.safetensors`);
      for (const f of files) {
        assert.equal(await sha256(join(a, f)), await sha256(join(b, f)), f);
      }
      // Parameter count from the published dims (shared/README.md): dim 64,
      // hidden 172, 5 layers, 8 heads, 4 KV heads (head_dim 8), vocab 512.
      const layer = 64 + 64 * 64 + 2 * 32 * 64 + 64 * 64 + 64 + 3 * 172 * 64;
      const info = JSON.parse((await runCli(["info", b, "--json"])).stdout);
      assert.equal(info.layers, 5);
      assert.equal(info.parameters, 512 * 64 + 5 * layer + 64);
      for (const q of ["q8", "q4"]) {
        const r = await runCli([
          "split",
          GGUF,
          "--out",
          join(dir, q),
          "--quantize",
          q,
        ]);
        assert.equal(r.code, 0, r.stderr);
        const qi = JSON.parse(
          (await runCli(["info", join(dir, q), "--json"])).stdout,
        );
        assert.equal(qi.quantization, q);
        assert.ok(qi.dtypes.includes(q));
      }
    } finally {
      await cleanup();
    }
  },
});
