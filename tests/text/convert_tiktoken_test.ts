// The tiktoken → tokenizer.json conversion (GLM-4-9B-chat's tokenizer.model)
// against an independent tiktoken implementation: no GLM-4 encodings are
// available here, so the proof uses OpenAI's cl100k_base ranks from npm
// js-tiktoken (the port of tiktoken's own algorithm), whose split regex is
// GLM-4's. cl100k's 100,256 ranks are written as a tiktoken file, parsed and
// converted; the converted tokenizer must encode every test string to exactly
// js-tiktoken's ids, and decode them back.
import assert from "node:assert/strict";
import cl100k from "js-tiktoken/ranks/cl100k_base";
import { Tiktoken } from "js-tiktoken/lite";
import {
  convertTiktoken,
  parseTiktoken,
} from "../../lib/text/convert_tiktoken.ts";
import { Tokenizer } from "../../lib/text/tokenizer.ts";
import { FormatError } from "../../lib/errors.ts";

/** js-tiktoken's packed ranks ("! <first rank> <base64>...") as a tiktoken file. */
function tiktokenFile(packed: string): string {
  const lines: string[] = [];
  for (const row of packed.split("\n")) {
    const [, first, ...tokens] = row.split(" ");
    tokens.forEach((b64, i) => lines.push(`${b64} ${Number(first) + i}`));
  }
  return lines.join("\n") + "\n";
}

const TEXTS = [
  "Hello world",
  "  leading spaces and trailing   ",
  "I'm sure they'll say it's FINE, we've DONE it.",
  "数字 12345678 和中文，混合 English text！",
  "tabs\tand\nnewlines\r\n\n\nmore",
  "emoji 🤖🚀 and accents: café naïve Ångström",
  "code: for (let i = 0; i < n; i++) { x += y[i] * 2; }",
  "    indented\n        deeper\n",
  "https://example.com/path?q=1&r=two#frag",
];

Deno.test("tiktoken: cl100k_base converted = js-tiktoken's ids on every test string", () => {
  const text = tiktokenFile(cl100k.bpe_ranks);
  const ranks = parseTiktoken(text, "cl100k.tiktoken");
  assert.equal(ranks.length, 100256);
  const special = Object.entries(cl100k.special_tokens).map((
    [content, id],
  ) => ({
    content,
    id: id as number,
  }));
  const c = convertTiktoken({
    ranks,
    special,
    eosId: 100257,
    file: "cl100k.tiktoken",
  });
  const tok = Tokenizer.fromJson(c.tokenizer, { config: c.tokenizerConfig });
  const ref = new Tiktoken(cl100k);
  for (const t of TEXTS) {
    const want = ref.encode(t);
    const got = tok.encode(t, { addSpecialTokens: false });
    assert.deepEqual(got, want, JSON.stringify(t));
    assert.equal(tok.decode(got), t);
  }
  // special tokens are matched whole
  assert.deepEqual(
    tok.encode("a<|endoftext|>b", { addSpecialTokens: false }),
    [ref.encode("a")[0], 100257, ref.encode("b")[0]],
  );
});

Deno.test("tiktoken: malformed files are refused by line", () => {
  assert.throws(
    () => parseTiktoken("YQ== 0\nYg== 2\n", "t.model"),
    (e) =>
      e instanceof FormatError && /line 2: rank 2 out of order/.test(e.message),
  );
  assert.throws(
    () => parseTiktoken("YQ== 0\nnot base64!\n", "t.model"),
    (e) => e instanceof FormatError && /line 2 is not/.test(e.message),
  );
  assert.throws(
    () => parseTiktoken("YQ== 0\nYQ== 1\n", "t.model"),
    (e) => e instanceof FormatError && /repeated/.test(e.message),
  );
});
