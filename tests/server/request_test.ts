// Request validation and body reading of the server, without a model.
import assert from "node:assert/strict";
import {
  parseChatRequest,
  parseCompletionRequest,
} from "../../lib/server/request.ts";
import { readJsonBody } from "../../lib/server/body.ts";
import { ApiError } from "../../lib/server/api_error.ts";

function rejects(fn: () => unknown, param: string) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ApiError, String(e));
    assert.equal(e.status, 400);
    assert.equal(e.param, param);
    assert.equal(e.toJSON().error.type, "invalid_request_error");
    return true;
  });
}

Deno.test("request: completions fields are typed, null is absent, unknown fields ignored", () => {
  const r = parseCompletionRequest({
    model: "m",
    prompt: ["Once"],
    max_tokens: 5,
    temperature: 0,
    top_p: 0.5,
    seed: 3,
    stop: "x",
    n: 1,
    stream: true,
    stream_options: { include_usage: true },
    top_k: 4,
    presence_penalty: 0.1, // unknown here: ignored
    user: "u",
    logprobs: null,
  });
  assert.equal(r.prompt, "Once");
  assert.deepEqual(
    [
      r.maxTokens,
      r.temperature,
      r.topP,
      r.seed,
      r.stop,
      r.stream,
      r.includeUsage,
      r.topK,
    ],
    [5, 0, 0.5, 3, ["x"], true, true, 4],
  );
  assert.deepEqual(parseCompletionRequest({ prompt: [1, 2, 3] }).prompt, [
    1,
    2,
    3,
  ]);
  assert.deepEqual(parseCompletionRequest({ prompt: [[4, 5]] }).prompt, [4, 5]);
  assert.equal(
    parseCompletionRequest({ prompt: "a", max_tokens: null }).maxTokens,
    undefined,
  );
});

Deno.test("request: bad values are 400s naming the field", () => {
  rejects(
    () => parseCompletionRequest({ prompt: "a", max_tokens: -1 }),
    "max_tokens",
  );
  rejects(
    () => parseCompletionRequest({ prompt: "a", max_tokens: 1.5 }),
    "max_tokens",
  );
  rejects(
    () => parseCompletionRequest({ prompt: "a", max_tokens: "8" }),
    "max_tokens",
  );
  rejects(
    () => parseCompletionRequest({ prompt: "a", temperature: 3 }),
    "temperature",
  );
  rejects(() => parseCompletionRequest({ prompt: "a", top_p: 0 }), "top_p");
  rejects(() => parseCompletionRequest({ prompt: "a", n: 2 }), "n");
  rejects(() => parseCompletionRequest({ prompt: "a", stop: [1] }), "stop");
  rejects(
    () =>
      parseCompletionRequest({ prompt: "a", stop: ["a", "b", "c", "d", "e"] }),
    "stop",
  );
  rejects(
    () => parseCompletionRequest({ prompt: "a", stream: "yes" }),
    "stream",
  );
  rejects(() => parseCompletionRequest({ prompt: "a", echo: true }), "echo");
  rejects(
    () => parseCompletionRequest({ prompt: "a", logprobs: 2 }),
    "logprobs",
  );
  rejects(() => parseCompletionRequest({}), "prompt");
  rejects(() => parseCompletionRequest({ prompt: ["a", "b"] }), "prompt");
  rejects(() => parseCompletionRequest({ prompt: [-1] }), "prompt");
  rejects(() => parseChatRequest({ messages: "hi" }), "messages");
  rejects(
    () => parseChatRequest({ messages: [{ content: "x" }] }),
    "messages[0].role",
  );
  rejects(
    () =>
      parseChatRequest({
        messages: [{ role: "user", content: [{ type: "image_url" }] }],
      }),
    "messages[0].content[0]",
  );
  rejects(
    () =>
      parseChatRequest({
        messages: [{ role: "user", content: "x" }],
        max_completion_tokens: 0,
      }),
    "max_completion_tokens",
  );
  rejects(
    () =>
      parseChatRequest({
        messages: [{ role: "user", content: "x" }],
        tools: [{}],
      }),
    "tools",
  );
});

Deno.test("request: chat content parts are joined, null content is empty", () => {
  const r = parseChatRequest({
    messages: [
      { role: "system", content: null },
      {
        role: "user",
        content: [{ type: "text", text: "a" }, { type: "text", text: "b" }],
        name: "x",
      },
    ],
    max_tokens: 3,
  });
  assert.deepEqual(r.messages, [{ role: "system", content: "" }, {
    role: "user",
    content: "ab",
  }]);
  assert.equal(r.maxTokens, 3);
});

Deno.test("body: the cap applies to the declared length and to a chunked body", async () => {
  const big = new Request("http://x/", {
    method: "POST",
    body: "x".repeat(50),
    headers: { "content-length": "50" },
  });
  await assert.rejects(
    readJsonBody(big, 10),
    (e: ApiError) => e.status === 413,
  );
  const chunked = new Request("http://x/", {
    method: "POST",
    body: new ReadableStream({
      start(c) {
        for (let i = 0; i < 5; i++) {
          c.enqueue(new TextEncoder().encode("[1,2,3]"));
        }
        c.close();
      },
    }),
  });
  await assert.rejects(
    readJsonBody(chunked, 20),
    (e: ApiError) => e.status === 413,
  );
  const notObject = new Request("http://x/", { method: "POST", body: "[1]" });
  await assert.rejects(
    readJsonBody(notObject, 20),
    (e: ApiError) => e.status === 400,
  );
  const badUtf8 = new Request("http://x/", {
    method: "POST",
    body: new Uint8Array([0x22, 0xff, 0x22]),
  });
  await assert.rejects(
    readJsonBody(badUtf8, 20),
    (e: ApiError) => e.status === 400,
  );
});
