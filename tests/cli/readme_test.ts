/**
 * The README's examples, run as a new user would: the module imported from
 * another directory (by path and through an import map), and every command
 * of "Command line" on a tiny model, in an environment without
 * XDG_RUNTIME_DIR. A command that succeeds prints no `error:` line.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { gpuTest } from "../_gpu.ts";
import { makeTinyModel } from "../../lib/testing/tiny_model.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const README = Deno.readTextFileSync(join(ROOT, "README.md"));

/** The fenced blocks of `lang` under the README heading `heading`. */
function blocks(heading: string, lang: string): string[] {
  const start = README.indexOf(`## ${heading}\n`);
  assert.ok(start >= 0, `README has no "## ${heading}"`);
  const end = README.indexOf("\n## ", start + 3);
  const section = README.slice(start, end < 0 ? undefined : end);
  const re = new RegExp("```" + lang + "\\n([\\s\\S]*?)```", "g");
  return [...section.matchAll(re)].map((m) => m[1]);
}

/** Runs deno in `cwd` with a minimal environment (no XDG_RUNTIME_DIR). */
async function deno(
  args: string[],
  opts: { cwd: string; env?: Record<string, string>; stdin?: string },
) {
  const env: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/tmp",
    ...opts.env,
  };
  for (const k of ["DENO_DIR", "VK_ICD_FILENAMES", "NPM_CONFIG_REGISTRY"]) {
    const v = Deno.env.get(k);
    if (v !== undefined) env[k] = v;
  }
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: opts.cwd,
    clearEnv: true,
    env,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  const d = new TextDecoder();
  return {
    code: out.code,
    stdout: d.decode(out.stdout),
    stderr: d.decode(out.stderr),
  };
}

function assertQuiet(
  what: string,
  r: { code: number; stdout: string; stderr: string },
) {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stderr}`);
  const bad = (r.stdout + r.stderr).split("\n").filter((l) => /error:/.test(l));
  assert.deepEqual(bad, [], `${what} printed an error line`);
}

const MODULE_SMOKE = `
import assert from "node:assert/strict";
import { normalizeConfig, renderChatTemplate, Tokenizer } from "@strata/strata";
import * as byPath from "${join(ROOT, "mod.ts")}";
assert.equal(byPath.Tokenizer, Tokenizer);
const tok = Tokenizer.fromJson({
  model: { type: "BPE", vocab: { h: 0, i: 1, hi: 2 }, merges: ["h i"] },
  added_tokens: [],
});
assert.deepEqual(tok.encode("hi"), [2]);
assert.equal(
  renderChatTemplate("{{ messages[0].content }}!", { messages: [{ role: "user", content: "hi" }] }),
  "hi!",
);
assert.equal(normalizeConfig({
  model_type: "llama", hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1,
  num_attention_heads: 2, vocab_size: 3,
}, "c").headDim, 4);
console.log("module ok");
`;

async function consumerDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "strata-consumer-" });
  await Deno.writeTextFile(
    join(dir, "deno.json"),
    JSON.stringify({ imports: { "@strata/strata": join(ROOT, "mod.ts") } }),
  );
  return dir;
}

Deno.test("README: mod.ts imported from another directory (import map and path)", async () => {
  const dir = await consumerDir();
  try {
    await Deno.writeTextFile(join(dir, "main.ts"), MODULE_SMOKE);
    const r = await deno(["run", "-A", "main.ts"], { cwd: dir });
    assertQuiet("module import", r);
    assert.match(r.stdout, /module ok/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

gpuTest(
  "README: the From code example runs from another directory",
  async () => {
    const [example] = blocks("From code", "ts");
    assert.ok(example.includes('from "@strata/strata"'));
    const dir = await consumerDir();
    try {
      const hf = join(dir, "model");
      await makeTinyModel(hf, { arch: "llama", dtype: "F32" });
      await Deno.writeTextFile(
        join(dir, "main.ts"),
        example.replace('"path/to/model"', JSON.stringify(hf)),
      );
      const r = await deno(["run", "-A", "main.ts"], {
        cwd: dir,
        env: { STRATA_CACHE: join(dir, "cache") },
      });
      assertQuiet("From code", r);
      assert.ok(r.stdout.trim().split("\n").length >= 32, r.stdout);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

gpuTest("README: the Command line commands print no error line", async () => {
  const [script] = blocks("Command line", "sh");
  const dir = await Deno.makeTempDir({ prefix: "strata-readme-" });
  try {
    const hf = join(dir, "hf");
    await makeTinyModel(hf, { arch: "llama", dtype: "F32" });
    const env = { STRATA_CACHE: join(dir, "cache") };
    let ran = 0;
    for (const raw of script.split("\n")) {
      const line = raw.replace(/\s+#.*$/, "").trim();
      if (!line.startsWith("deno run -A cli.ts ")) continue;
      if (line.includes(" bench")) continue; // a benchmark: minutes, not a first-run step
      if (line.includes(" serve ")) continue; // runs until stopped: tests/server/ covers it
      const args = line.slice("deno run -A cli.ts ".length)
        .replace("<hf-dir|model.gguf|model.bin>", hf)
        .replace(/\bshards\//g, join(dir, "shards"))
        .replace(/\[--quantize[^\]]*\]/, "")
        .match(/"[^"]*"|\S+/g)!.map((a) => a.replace(/^"|"$/g, ""));
      const r = await deno(["run", "-A", join(ROOT, "cli.ts"), ...args], {
        cwd: dir,
        env,
        stdin: args[0] === "chat" ? "Hi\n" : undefined,
      });
      assertQuiet(line, r);
      ran++;
    }
    assert.equal(ran, 7, "split, info, plan, run ×3 (one traced), chat");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the npm versions pinned in lib/ equal deno.json's (tests use the map)", async () => {
  const map = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")))
    .imports as Record<string, string>;
  for (
    const [name, file] of [
      ["@huggingface/tokenizers", "lib/text/tokenizer.ts"],
      ["@huggingface/jinja", "lib/text/chat_template.ts"],
    ]
  ) {
    const src = await Deno.readTextFile(join(ROOT, file));
    assert.ok(src.includes(`"${map[name]}"`), `${file} imports ${map[name]}`);
  }
});
