// Hostile tokenizer.json files and chat templates end in one FormatError
// naming the file, quickly (issue 14).
import assert from "node:assert/strict";
import { Tokenizer } from "../../lib/text/tokenizer.ts";
import { renderChatTemplate } from "../../lib/text/chat_template.ts";
import { FormatError } from "../../lib/errors.ts";
import { makeTinyTokenizer } from "../../lib/testing/tiny_tokenizer.ts";
import { MAX_TOKENIZER_BYTES } from "../../lib/text/_validate_tokenizer.ts";

const tiny = () =>
  structuredClone(makeTinyTokenizer(300).tokenizerJson) as Record<
    string,
    // deno-lint-ignore no-explicit-any
    any
  >;

/** Writes `json` as dir/tokenizer.json and loads it, timing the load. */
async function loadDir(json: unknown): Promise<{ error: unknown; ms: number }> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(json));
    const t0 = performance.now();
    try {
      await Tokenizer.fromDir(dir);
      return { error: null, ms: performance.now() - t0 };
    } catch (e) {
      return { error: e, ms: performance.now() - t0 };
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("tokenizer.json: a vocab id of 2^31 is a clean FormatError within 10 s", async () => {
  const json = tiny();
  const first = Object.keys(json.model.vocab)[5];
  json.model.vocab[first] = 2 ** 31;
  const { error, ms } = await loadDir(json);
  assert.ok(error instanceof FormatError, String(error));
  assert.match(
    error.message,
    /tokenizer\.json: model\.vocab\[.*\] 2147483648 is out of range/,
  );
  assert.ok(!error.message.includes("\n"));
  assert.ok(ms < 10_000, `${ms} ms`);
});

Deno.test("tokenizer.json: added token ids beyond vocab + added tokens are refused", () => {
  const json = tiny();
  json.added_tokens[1].id = 1e8;
  assert.throws(
    () => Tokenizer.fromJson(json),
    (e) =>
      e instanceof FormatError &&
      /added_tokens\[1\]\.id 100000000/.test(e.message),
  );
  json.added_tokens[1].id = 1.5;
  assert.throws(
    () => Tokenizer.fromJson(json),
    /non-negative integer, got 1\.5/,
  );
});

Deno.test("tokenizer.json: a malformed post_processor fails at load, not on first encode", () => {
  const template = (single: unknown, ids: unknown[] = [1]) => {
    const json = tiny();
    json.post_processor = {
      type: "TemplateProcessing",
      single,
      pair: null,
      special_tokens: { "<s>": { id: "<s>", ids, tokens: ["<s>"] } },
    };
    return json;
  };
  const good = [{ SpecialToken: { id: "<s>", type_id: 0 } }, {
    Sequence: { id: "A", type_id: 0 },
  }];
  // The well-formed one works and adds BOS (id 1).
  const tok = Tokenizer.fromJson(template(good));
  assert.equal(tok.encode("hi")[0], 1);
  for (
    const [json, re] of [
      [template(null), /post_processor\.single must be a list/],
      [template(good, [1.5]), /ids\[0\] must be a non-negative integer/],
      [template(good, [null]), /ids\[0\] must be a non-negative integer/],
      [template([{ SpecialToken: { id: "</x>" } }]), /not in special_tokens/],
      [template([{ Sequence: { id: "C" } }]), /must be "A" or "B"/],
    ] as const
  ) {
    assert.throws(
      () => Tokenizer.fromJson(json, { file: "t/tokenizer.json" }),
      (e) =>
        e instanceof FormatError &&
        e.message.startsWith("t/tokenizer.json: ") &&
        re.test(e.message),
    );
  }
});

Deno.test("tokenizer.json: unknown component types and bad shapes name the file", () => {
  const cases: [(j: Record<string, unknown>) => void, RegExp][] = [
    [
      (j) => j.pre_tokenizer = { type: "Nope" },
      /unsupported pre_tokenizer type "Nope"/,
    ],
    [(j) => j.decoder = 7, /decoder must be an object or null/],
    [
      (j) => (j.model as { merges: unknown }).merges = [5],
      /model\.merges\[0\]/,
    ],
    [(j) => j.added_tokens = {}, /added_tokens must be a list/],
    [
      (j) => (j.added_tokens as { content: unknown }[])[0].content = null,
      /content must be a string/,
    ],
    [
      (j) => (j.model as { vocab: Record<string, unknown> }).vocab.a = "x",
      /model\.vocab\["a"\] must be a non-negative integer/,
    ],
  ];
  for (const [mutate, re] of cases) {
    const json = tiny();
    mutate(json);
    assert.throws(
      () => Tokenizer.fromJson(json),
      (e) => e instanceof FormatError && re.test(e.message),
      String(re),
    );
  }
});

Deno.test("tokenizer.json larger than the bound is refused before it is read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const f = await Deno.open(`${dir}/tokenizer.json`, {
      write: true,
      create: true,
    });
    await f.truncate(MAX_TOKENIZER_BYTES + 1); // sparse: no disk used
    f.close();
    await assert.rejects(
      Tokenizer.fromDir(dir),
      (e) =>
        e instanceof FormatError &&
        /larger than any real tokenizer\.json/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chat template: range(10**9) ends within 10 s with a clear error", () => {
  const t0 = performance.now();
  assert.throws(
    () =>
      renderChatTemplate("{% for x in range(10**9) %}{{ x }}{% endfor %}", {
        messages: [],
        source: "m/tokenizer_config.json",
      }),
    (e) =>
      e instanceof FormatError &&
      /^m\/tokenizer_config\.json: rendering stopped: range\(\) of 1000000000 items exceeds/
        .test(e.message),
  );
  assert.ok(performance.now() - t0 < 10_000);
});

Deno.test("chat template: time, output and list bounds", () => {
  const messages = [{ role: "user", content: "hi" }];
  const t0 = performance.now();
  // Nested loops within the range cap: stopped by the clock.
  assert.throws(
    () =>
      renderChatTemplate(
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        { messages, limits: { timeMs: 300 } },
      ),
    /rendering took longer than 300 ms/,
  );
  assert.ok(performance.now() - t0 < 5_000);
  // A string doubled in a loop: stopped by the output bound.
  assert.throws(
    () =>
      renderChatTemplate(
        "{% set s = 'xy' %}{% for i in range(60) %}{% set s = s ~ s %}{% endfor %}{{ s }}",
        { messages },
      ),
    /the output exceeds 8388608 characters/,
  );
  // A list doubled in a loop: stopped by the list bound.
  assert.throws(
    () =>
      renderChatTemplate(
        "{% set ns = namespace(a=[1]) %}{% for i in range(60) %}{% set ns.a = ns.a + ns.a %}{% endfor %}",
        { messages },
      ),
    /a list exceeds the limit of 100000 items/,
  );
  // Ordinary templates are untouched.
  assert.equal(
    renderChatTemplate(
      "{% for m in messages %}{{ m.role }}:{{ m.content }}{% endfor %}{{ range(3) | join(',') }}{{ range(10, 0, -4) | join(',') }}",
      { messages },
    ),
    "user:hi0,1,210,6,2",
  );
});
