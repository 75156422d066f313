/**
 * `run <model> --prompts-file FILE --json`: one object with every prompt's
 * result, ids equal to the float64 reference's greedy ids for each prompt
 * (ids and text prompts, different lengths); stats count every sequence;
 * a bad line is a one-line error naming the file and the line.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { gpuTest } from "../_gpu.ts";
import { loadReferenceModel, referenceGreedy } from "../reference/forward.ts";
import { tempRoot, tinyShards, VARIANTS } from "../engine/_models.ts";
import { parsePromptsFile } from "../../lib/cli/_prompts_file.ts";
import { FormatError } from "../../lib/errors.ts";
import { Tokenizer } from "../../lib/text/tokenizer.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const NEW = 5;

async function run(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

gpuTest(
  "cli: run --prompts-file --json gives every prompt its reference greedy ids",
  async () => {
    const v = VARIANTS[0];
    const { hf, shards } = await tinyShards(v.name, v);
    const ref = await loadReferenceModel(hf);
    const tok = await Tokenizer.fromDir(shards);
    const idsPrompts = [[1, 72, 101, 108], [1, 65], [
      1,
      84,
      104,
      101,
      32,
      99,
      97,
      116,
      32,
      115,
    ]];
    const file = join(await tempRoot(), "prompts.jsonl");
    await Deno.writeTextFile(
      file,
      idsPrompts.map((p) => JSON.stringify({ prompt_ids: p })).join("\n") +
        '\n\n{"prompt":"Hello"}\n',
    );
    const r = await run([
      "run",
      shards,
      "--prompts-file",
      file,
      "--batch-size",
      "3",
      "--max-new-tokens",
      String(NEW),
      "--temperature",
      "0",
      "--max-seq-len",
      "32",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.equal(lines.length, 1, "exactly one JSON object on stdout");
    const obj = JSON.parse(lines[0]);
    const prompts = [...idsPrompts, tok.encode("Hello")];
    assert.equal(obj.results.length, 4);
    let total = 0;
    for (const [i, p] of prompts.entries()) {
      const res = obj.results[i];
      assert.deepEqual(res.prompt_ids, p);
      const want = referenceGreedy(ref.weights, ref.config, p, NEW);
      assert.deepEqual(res.ids, want.slice(0, res.ids.length), `prompt ${i}`);
      assert.ok(
        res.ids.length === NEW ||
          ref.config.eosTokenIds.includes(res.ids.at(-1)),
      );
      assert.equal(typeof res.text, "string");
      total += res.ids.length;
    }
    assert.equal(obj.stats.new_tokens, total);
    assert.equal(obj.stats.sequences, 4);
    assert.equal(obj.stats.batch_size, 3);
    assert.ok(obj.stats.tokens_per_s > 0);
  },
);

gpuTest(
  "cli: run --prompts-file: a bad line names the file and line",
  async () => {
    const v = VARIANTS[0];
    const { shards } = await tinyShards(v.name, v);
    const file = join(await tempRoot(), "bad.jsonl");
    await Deno.writeTextFile(
      file,
      '{"prompt_ids":[1,2]}\n{"prompt_ids":"x"}\n',
    );
    const r = await run(["run", shards, "--prompts-file", file]);
    assert.equal(r.code, 1);
    const err = r.stderr.trim().split("\n");
    assert.equal(err.length, 1, r.stderr);
    assert.match(err[0], new RegExp(`${file}: line 2: `));
    assert.doesNotMatch(r.stdout, /\S/);
  },
);

Deno.test("prompts file: every kind of bad line is a FormatError with its line", () => {
  const bad = [
    "not json",
    "[1,2]",
    '{"prompt_ids":[]}',
    '{"prompt_ids":[1.5]}',
    '{"prompt":3}',
    '{"prompt":"a","prompt_ids":[1]}',
    '{"text":"a"}',
  ];
  for (const line of bad) {
    assert.throws(
      () => parsePromptsFile(`{"prompt":"ok"}\n${line}\n`, "f.jsonl"),
      (e) => e instanceof FormatError && /^f\.jsonl: line 2: /.test(e.message),
      line,
    );
  }
  assert.throws(() => parsePromptsFile("\n\n", "f.jsonl"), FormatError);
});
