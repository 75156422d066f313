/**
 * `run --prompt TEXT` on the real stories260K GGUF through the CLI: the
 * `--json` "text" is the text that streams (the first generated token keeps
 * the space the prompt gives it), and `--stop` ends the text right before
 * the stop string. Expected text comes from llama2.c's published greedy
 * output (../shared), whose first tokens are the prompt "Once upon a".
 * Skips when ../shared or a WebGPU adapter is absent.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { gpu, gpuTest } from "../_gpu.ts";

const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));
const SHARED = fileURLToPath(new URL("../../../shared/", import.meta.url));
const GGUF = SHARED + "models/gguf/stories260K.gguf";
const EXPECTED = SHARED + "models/stories260K/expected_greedy_t0_256steps.txt";
const PROMPT = "Once upon a";

const have = await Deno.stat(GGUF).then(() => true, () => false);
if (!have) console.log(`run_text_test: skipped (${GGUF} is absent)`);
if (!gpu) console.log("run_text_test: skipped (no WebGPU adapter)");

async function run(args: string[], cache: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "run", GGUF, ...args],
    env: {
      XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp",
      STRATA_CACHE: cache,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

if (have) {
  gpuTest(
    "run: --json text equals the streamed text; --stop ends it before the stop string",
    async () => {
      const expected = await Deno.readTextFile(EXPECTED);
      assert.ok(expected.startsWith(PROMPT + " time,"));
      const cont = expected.slice(PROMPT.length);
      const cache = await Deno.makeTempDir({ prefix: "strata-run-text-" });
      try {
        const flags = [
          "--prompt",
          PROMPT,
          "--temperature",
          "0",
          "--max-new-tokens",
          "12",
        ];
        // --tokenizer means nothing for a GGUF: a note says it is ignored
        const streamed = await run([...flags, "--tokenizer", "x.bin"], cache);
        assert.equal(streamed.code, 0, streamed.stderr);
        assert.match(streamed.stderr, /note: --tokenizer .* ignored/);
        const json = await run([...flags, "--json"], cache);
        assert.equal(json.code, 0, json.stderr);
        const obj = JSON.parse(json.stdout);
        // " time, there was ...": the space of "▁time" follows the prompt
        assert.ok(obj.text.startsWith(" time,"), JSON.stringify(obj.text));
        assert.equal(obj.text, cont.slice(0, obj.text.length));
        assert.equal(streamed.stdout, obj.text + "\n");

        // --stop: the text ends right before the first stop string
        const at = cont.indexOf(" Lily");
        assert.ok(at > 0);
        const stopFlags = [
          ...flags.slice(0, 4),
          "--max-new-tokens",
          "100",
          "--stop",
          "Lily",
          "--stop",
          "not in the story",
        ];
        const s = await run(stopFlags, cache);
        assert.equal(s.code, 0, s.stderr);
        assert.equal(s.stdout, cont.slice(0, at + 1) + "\n");
        assert.match(s.stderr, /tokens \(stop\)/);
        const sj = JSON.parse(
          (await run([...stopFlags, "--json"], cache)).stdout,
        );
        assert.equal(sj.text, cont.slice(0, at + 1));

        // `run ... | head`: the reader goes away; run stops quietly
        const child = new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", CLI, "run", GGUF, ...flags.slice(0, 4)],
          env: {
            XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp",
            STRATA_CACHE: cache,
          },
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const reader = child.stdout.getReader();
        const first = await reader.read();
        assert.ok(!first.done && first.value.length > 0);
        await reader.cancel();
        const [status, err] = await Promise.all([
          child.status,
          new Response(child.stderr).text(),
        ]);
        assert.equal(status.code, 0, err);
        assert.doesNotMatch(err, /error/);
      } finally {
        await Deno.remove(cache, { recursive: true });
      }
    },
  );
}
