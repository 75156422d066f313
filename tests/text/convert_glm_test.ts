// ChatGLM tokenizer.model conversion at split time (lib/text/convert_glm.ts):
// - the SentencePiece reader against an independent source: tok512.model's
//   pieces and scores equal llama2.c's export of the same tokenizer
//   (tok512.bin, ../shared/models/stories260K);
// - a ChatGLM3-style directory (SentencePiece tokenizer.model, remote-code
//   tokenizer_config.json) and a GLM-4-9B-chat-style one (tiktoken file):
//   the split source gets a tokenizer.json whose special tokens follow the
//   vocabulary, whose encoding prefixes [gMASK] sop / [gMASK]<sop>, whose
//   chat format is the families' and whose stop ids include <|user|> and
//   <|observation|>.
// No ChatGLM3 or GLM-4 encodings from an independent source exist here: the
// tiktoken algorithm itself is proven on cl100k (convert_tiktoken_test.ts),
// the GLM vocabularies are not; --prompt-ids works without any tokenizer.
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseSpmModel } from "../../lib/text/spm_model.ts";
import { openHfSource } from "../../lib/split/source_hf.ts";
import { Tokenizer } from "../../lib/text/tokenizer.ts";
import { applyChatTemplate } from "../../lib/text/chat_template.ts";
import { makeTinyGlm } from "../../lib/testing/tiny_glm.ts";

const STORIES = new URL("../../../shared/models/stories260K/", import.meta.url)
  .pathname;
const HAVE = await Deno.stat(STORIES).then(() => true, () => false);

/** llama2.c's tokenizer.bin: [max_len], then per token score, len, bytes. */
function readLlama2cTokenizer(b: Uint8Array, n: number) {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let at = 4;
  const out: { score: number; bytes: Uint8Array }[] = [];
  for (let i = 0; i < n; i++) {
    const score = dv.getFloat32(at, true), len = dv.getInt32(at + 4, true);
    out.push({ score, bytes: b.slice(at + 8, at + 8 + len) });
    at += 8 + len;
  }
  return out;
}

Deno.test({
  name:
    "spm model: tok512.model's pieces and scores = llama2.c's export (tok512.bin)",
  ignore: !HAVE,
  fn: async () => {
    const m = parseSpmModel(
      await Deno.readFile(join(STORIES, "tok512.model")),
      "tok512.model",
    );
    assert.equal(m.modelType, 2); // BPE
    assert.equal(m.vocab.tokens.length, 512);
    const want = readLlama2cTokenizer(
      await Deno.readFile(join(STORIES, "tok512.bin")),
      512,
    );
    const enc = new TextEncoder();
    m.vocab.tokens.forEach((p, i) => {
      // llama2.c's export: <s>, </s> → "\n<s>\n", "\n</s>\n"; ▁ → space
      const bytes = i === 1 || i === 2
        ? enc.encode(`\n${p}\n`)
        : enc.encode(p.replaceAll("▁", " "));
      assert.deepEqual(bytes, want[i].bytes, `piece ${i}`);
      assert.equal(Math.fround(m.vocab.scores[i]), want[i].score, `score ${i}`);
    });
  },
});

Deno.test({
  name:
    "chatglm split source: SentencePiece tokenizer.model → tokenizer.json with [gMASK] sop, ChatGLM3 chat format, stop on <|user|>",
  ignore: !HAVE,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "strata-chatglm3-tok-" });
    try {
      await makeTinyGlm(dir, { layout: "chatglm3", dtype: "F32", layers: 1 });
      await Deno.copyFile(
        join(STORIES, "tok512.model"),
        join(dir, "tokenizer.model"),
      );
      await Deno.writeTextFile(
        join(dir, "tokenizer_config.json"),
        JSON.stringify({
          tokenizer_class: "ChatGLMTokenizer",
          auto_map: {
            AutoTokenizer: ["tokenization_chatglm.ChatGLMTokenizer"],
          },
        }),
      );
      const src = await openHfSource(dir);
      src.close();
      const out = join(dir, "out");
      await Deno.mkdir(out);
      for (
        const name of [
          "tokenizer.json",
          "tokenizer_config.json",
          "generation_config.json",
        ]
      ) {
        await Deno.writeTextFile(join(out, name), src.files[name]);
      }
      const tok = await Tokenizer.fromDir(out);
      // the specials follow the 512 pieces in tokenization_chatglm.py's order
      const ids = [
        "[gMASK]",
        "sop",
        "<|user|>",
        "<|assistant|>",
        "<|observation|>",
      ]
        .map((t) => tok.tokenToId(t));
      assert.deepEqual(ids, [513, 515, 518, 519, 520]);
      const plain = tok.encode("Once upon a time", { addSpecialTokens: false });
      assert.deepEqual(tok.encode("Once upon a time"), [513, 515, ...plain]);
      assert.equal(tok.decode(plain), "Once upon a time");
      // stop ids: config eos 2, <|user|>, <|observation|>
      assert.deepEqual(tok.eosTokenIds.toSorted((a, b) => a - b), [
        2,
        518,
        520,
      ]);
      const prompt = applyChatTemplate(tok, [{ role: "user", content: "Hi" }]);
      assert.equal(prompt, "[gMASK]sop<|user|>\n Hi<|assistant|>");
      const chat = tok.encode(prompt, { addSpecialTokens: false });
      assert.deepEqual(chat.slice(0, 3), [513, 515, 518]);
      assert.equal(chat.at(-1), 519);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("chatglm split source: tiktoken tokenizer.model (GLM-4-9B-chat) → specials after the ranks, [gMASK]<sop>, the source's chat template kept", async () => {
  const dir = await Deno.makeTempDir({ prefix: "strata-glm4-tok-" });
  try {
    await makeTinyGlm(dir, { layout: "glm4-chat", dtype: "F32", layers: 1 });
    // 256 single bytes, then a few merges
    const lines: string[] = [];
    for (let b = 0; b < 256; b++) {
      lines.push(`${btoa(String.fromCharCode(b))} ${b}`);
    }
    ["He", "ll", "Hell", "Hello", " w", "or", " wor", "ld", " world"].forEach((
      t,
      i,
    ) => lines.push(`${btoa(t)} ${256 + i}`));
    await Deno.writeTextFile(
      join(dir, "tokenizer.model"),
      lines.join("\n") + "\n",
    );
    const template =
      "[gMASK]<sop>{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}{% endfor %}<|assistant|>";
    await Deno.writeTextFile(
      join(dir, "tokenizer_config.json"),
      JSON.stringify({ chat_template: template }),
    );
    const src = await openHfSource(dir);
    src.close();
    const out = join(dir, "out");
    await Deno.mkdir(out);
    for (
      const name of [
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
      ]
    ) {
      await Deno.writeTextFile(join(out, name), src.files[name]);
    }
    const tok = await Tokenizer.fromDir(out);
    const n = 265; // ranks
    assert.equal(tok.tokenToId("<|endoftext|>"), n);
    assert.equal(tok.tokenToId("[gMASK]"), n + 2);
    assert.equal(tok.tokenToId("<sop>"), n + 4);
    assert.equal(tok.tokenToId("<|user|>"), n + 7);
    // tiktoken: the lowest-rank pair merges first: Hello = one token, " world" one
    assert.deepEqual(tok.encode("Hello world", { addSpecialTokens: false }), [
      259,
      264,
    ]);
    assert.deepEqual(tok.encode("Hello"), [n + 2, n + 4, 259]);
    assert.equal(tok.chatTemplates.default ?? tok.chatTemplate, template);
    // config eos [2, 5, 7] plus <|user|>, <|observation|>
    for (const id of [2, 5, 7, n + 7, n + 9]) {
      assert.ok(tok.eosTokenIds.includes(id), `stops on ${id}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
