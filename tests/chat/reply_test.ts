// The shared reply logic (lib/chat) with scripted fake models and the tiny
// byte-level tokenizer: end-of-turn markers, stop strings across tokens,
// finish reasons, the context check, the conversation kept by the session.
import assert from "node:assert/strict";
import { streamReply } from "../../lib/chat/reply.ts";
import { ChatSession, endOfTurnIds } from "../../lib/chat/session.ts";
import { Tokenizer } from "../../lib/text/tokenizer.ts";
import {
  makeTinyTokenizer,
  TINY_CHAT_TEMPLATE,
} from "../../lib/testing/tiny_tokenizer.ts";
import { UsageError } from "../../lib/errors.ts";

const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer();
const tok = Tokenizer.fromJson(tokenizerJson, { config: tokenizerConfig });
const ids = (s: string) => tok.encode(s, { addSpecialTokens: false });
const EOS = tok.eosTokenIds[0];

/** Yields `script` one id per "pass", like the engine (stops after EOS). */
function scripted(script: number[], stopReason?: string, maxSeqLen?: number) {
  const model = {
    tokenizer: tok,
    maxSeqLen,
    lastStats: null as { stopReason: string } | null,
    prompts: [] as number[][],
    passes: 0,
    async *stream(input: number[], opts: { signal?: AbortSignal }) {
      model.prompts.push(input);
      for (const id of script) {
        if (opts.signal?.aborted) return;
        model.passes++;
        yield id;
        if (id === EOS) break;
      }
      model.lastStats = stopReason ? { stopReason } : null;
    },
  };
  return model;
}

Deno.test("reply: text streams in pieces that add up; EOS ends it with stop", async () => {
  const m = scripted([...ids(" a big red ball"), EOS, ...ids(" never")], "eos");
  const pieces: string[] = [];
  const r = await streamReply(m, ids("Lily saw"), {
    onText: (s) => void pieces.push(s),
  });
  assert.equal(r.text, " a big red ball");
  assert.equal(pieces.join(""), r.text);
  assert.ok(pieces.length > 1);
  assert.equal(r.finishReason, "stop");
  assert.equal(r.completionTokens, ids(" a big red ball").length + 1);
  assert.equal(r.promptTokens, ids("Lily saw").length);
});

Deno.test("reply: a stop string split across tokens ends the text right before it", async () => {
  const text = " she ran to the tree and said";
  const m = scripted(ids(text), "length");
  const r = await streamReply(m, [1], { stop: ["the tr", "zzz"] });
  assert.equal(r.text, " she ran to ");
  assert.equal(r.finishReason, "stop");
  // it stopped consuming ids at the one that completed the stop string
  assert.ok(m.passes < ids(text).length);
});

Deno.test("reply: finish reasons from the engine: length, context; an abort", async () => {
  assert.equal(
    (await streamReply(scripted(ids(" park"), "length"), [1])).finishReason,
    "length",
  );
  assert.equal(
    (await streamReply(scripted(ids(" park"), "context"), [1])).finishReason,
    "context",
  );
  const ac = new AbortController();
  const r = await streamReply(scripted(ids(" the little girl had"), "length"), [
    1,
  ], {
    signal: ac.signal,
    onText: () => ac.abort(),
  });
  assert.equal(r.finishReason, "abort");
  assert.ok(r.completionTokens < ids(" the little girl had").length);
});

Deno.test("reply: a prompt that leaves no room is refused before generating", async () => {
  const m = scripted(ids(" x"), "length", 4);
  await assert.rejects(
    streamReply(m, [1, 2, 3, 4]),
    (e: Error) =>
      e instanceof UsageError && /does not fit the context \(4/.test(e.message),
  );
  assert.equal(m.prompts.length, 0);
});

Deno.test("session: end-of-turn markers the template writes end a reply; EOS ids are left to the engine", async () => {
  // a template with a marker that is a token of the vocabulary
  const tpl = "{% for m in messages %}{{ m.content }}<unk>{% endfor %}";
  const eot = endOfTurnIds(tok, tpl);
  assert.deepEqual([...eot], []); // <unk> is not an end-of-turn marker
  const withEot = "{% for m in messages %}{{ m.content }}</s>{% endfor %}";
  assert.deepEqual([...endOfTurnIds(tok, withEot)], []); // </s> is EOS already
  // A tokenizer whose EOS is not </s>: then </s> in the template ends turns.
  const cfg = { ...tokenizerConfig, eos_token: "<unk>" };
  const tok2 = Tokenizer.fromJson(tokenizerJson, { config: cfg });
  assert.deepEqual([...endOfTurnIds(tok2, withEot)], [tok.tokenToId("</s>")]);
  const m = {
    ...scripted([...ids(" Hi"), EOS, ...ids(" more")]),
    tokenizer: tok2,
  };
  m.stream = async function* (input: number[]) {
    m.prompts.push(input);
    yield* [...ids(" Hi"), EOS, ...ids(" more")]; // the engine would not stop
  };
  const chat = new ChatSession({ model: m, modelName: "t", template: withEot });
  const r = await chat.reply(chat.ask("Hello"));
  assert.equal(r.text, " Hi");
  assert.equal(r.finishReason, "stop");
});

Deno.test("session: the conversation alternates; reset keeps the system prompt; failures take the turn back", async () => {
  const m = scripted([...ids(" Lily"), EOS], "eos", 64);
  const chat = new ChatSession({
    model: m,
    modelName: "tiny",
    template: TINY_CHAT_TEMPLATE,
    system: "Be brief.",
  });
  const p1 = chat.ask("Name?");
  assert.equal(
    tok.decode(p1),
    "<s>system: Be brief.</s>\nuser: Name?</s>\nassistant:",
  );
  await chat.reply(p1);
  assert.deepEqual(chat.messages.map((x) => x.role), [
    "system",
    "user",
    "assistant",
  ]);
  assert.equal(chat.messages[2].content, "Lily");
  // too long for 64 positions: refused, and the message is taken back
  assert.throws(() => chat.ask("ball ".repeat(40)), /does not fit the context/);
  assert.equal(chat.messages.length, 3);
  // a failing generation takes the user's message back too
  const failing = {
    tokenizer: tok,
    // deno-lint-ignore require-yield
    async *stream(): AsyncGenerator<number> {
      throw new UsageError("the engine failed");
    },
  };
  const c2 = new ChatSession({
    model: failing,
    modelName: "f",
    template: TINY_CHAT_TEMPLATE,
  });
  await assert.rejects(c2.reply(c2.ask("Hi")), /the engine failed/);
  assert.deepEqual(c2.messages, []);
  chat.reset();
  assert.deepEqual(chat.messages, [{ role: "system", content: "Be brief." }]);
});
