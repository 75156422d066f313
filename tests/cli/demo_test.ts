// `strata demo` (the README's first command) end to end, as a subprocess:
// it makes the seeded model, splits it, shows the shard directory, streams
// it under a budget and cleans up after itself.
import assert from "node:assert/strict";
import { join } from "node:path";
import { gpuTest } from "../_gpu.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

async function demo(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "demo", ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: o.code,
    stdout: dec.decode(o.stdout),
    stderr: dec.decode(o.stderr),
  };
}

gpuTest(
  "demo: make, split, show the shards, stream, keep with --keep",
  async () => {
    const keep = await Deno.makeTempDir({ prefix: "strata-demo-test-" });
    try {
      const r = await demo([
        "--layers",
        "3",
        "--max-new-tokens",
        "3",
        "--keep",
        keep,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
      for (
        const re of [
          /^1\. making a seeded tiny llama \(3 layers, F16\)/m,
          /holds .*embed\.safetensors.*layers\/ \(3 files\).*manifest\.json/,
          /architecture: +llama/,
          /^3\. loading under that budget/m,
          /generated ids: \[\d+, \d+, \d+\]/,
          /^4\. profile/m,
          /deno run -A cli\.ts info /,
        ]
      ) assert.match(r.stdout, re);
      const shards = join(keep, "tiny-llama-shards");
      const m = JSON.parse(
        await Deno.readTextFile(join(shards, "manifest.json")),
      );
      assert.equal(m.layers.length, 3);
    } finally {
      await Deno.remove(keep, { recursive: true });
    }
  },
);

Deno.test("demo: bad flags are one line, --help explains", async () => {
  const bad = await demo(["--layers", "1"]);
  assert.equal(bad.code, 1);
  assert.equal(bad.stderr.trim().split("\n").length, 1, bad.stderr);
  assert.match(bad.stderr, /--layers must be an integer >= 3/);
  const help = await demo(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: deno run -A cli\.ts demo/);
});
