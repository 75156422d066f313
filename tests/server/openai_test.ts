// `serve` driven by the official `openai` npm client (pinned in deno.json)
// over 127.0.0.1 on a free port. Truths: the text `run` prints for the same
// prompt (an actual `run` process), llama2.c's published greedy story
// (../shared), and `run --prompt-ids` on the chat prompt rendered here with
// the template. Every test stops its server. Skips without ../shared or a
// WebGPU adapter.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";
import { gpu, gpuTest } from "../_gpu.ts";
import { AutoModel } from "../../lib/engine/auto_model.ts";
import { type RunningServer, startServer } from "../../lib/server/server.ts";
import { renderChatTemplate } from "../../lib/text/chat_template.ts";
import { TINY_CHAT_TEMPLATE } from "../../lib/testing/tiny_tokenizer.ts";
import { tinyShards } from "../engine/_models.ts";

const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));
const SHARED = fileURLToPath(new URL("../../../shared/", import.meta.url));
const BIN = SHARED + "models/stories260K/stories260K.bin";
const TOK = SHARED + "models/stories260K/tok512.bin";
const EXPECTED = SHARED + "models/stories260K/expected_greedy_t0_256steps.txt";
const PROMPT = "Once upon a time";

const have = await Deno.stat(BIN).then(() => true, () => false);
if (!have) console.log(`openai_test: skipped (${BIN} is absent)`);
if (!gpu) console.log("openai_test: skipped (no WebGPU adapter)");

const env = (cache: string) => ({
  XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp",
  STRATA_CACHE: cache,
});

/** `strata run ...` as a process: its stdout. */
async function runCli(args: string[], cache: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "run", ...args],
    env: env(cache),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, err);
  return new TextDecoder().decode(out.stdout);
}

const client = (url: string, apiKey = "unused") =>
  new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0, timeout: 60_000 });

/** One stories260K model shared by the in-process servers of this file. */
let stories: Promise<AutoModel> | null = null;
let cacheDir: string | null = null;
async function storiesModel(): Promise<AutoModel> {
  cacheDir ??= await Deno.makeTempDir({ prefix: "strata-serve-" });
  stories ??= AutoModel.fromPretrained(BIN, {
    tokenizer: TOK,
    gpu: gpu!,
    layerShardsSavingPath: `${cacheDir}/stories`,
  });
  return stories;
}
globalThis.addEventListener("unload", () => {
  if (cacheDir) Deno.removeSync(cacheDir, { recursive: true });
});

async function withServer(
  opts: Partial<Parameters<typeof startServer>[0]>,
  fn: (s: RunningServer, model: AutoModel) => Promise<void>,
): Promise<void> {
  const model = await storiesModel();
  const server = await startServer({
    model,
    modelId: "stories260K",
    chatTemplate: null,
    hostname: "127.0.0.1",
    port: 0,
    ...opts,
  });
  try {
    await fn(server, model);
  } finally {
    await server.shutdown();
  }
}

/** The greedy story after `prompt` (llama2.c's output starts with it). */
async function storyAfter(prompt: string): Promise<string> {
  const story = await Deno.readTextFile(EXPECTED);
  assert.ok(story.startsWith(prompt));
  return story.slice(prompt.length);
}

if (have) {
  gpuTest(
    "serve (CLI): at temperature 0 the text equals what run prints, streamed or not; SIGTERM stops it",
    async () => {
      // serve and run each split into their own cache (not the same one at once)
      const cache = await Deno.makeTempDir({ prefix: "strata-serve-cli-" });
      await Deno.mkdir(`${cache}/run`);
      await Deno.mkdir(`${cache}/serve`);
      const flags = ["--tokenizer", TOK];
      const proc = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", CLI, "serve", BIN, ...flags, "--port", "0"],
        env: { ...env(`${cache}/serve`), STRATA_API_KEY: "" },
        stdout: "null",
        stderr: "piped",
      }).spawn();
      let stderr = "";
      const reader = proc.stderr.pipeThrough(new TextDecoderStream())
        .getReader();
      const drained = (async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          stderr += value;
        }
      })();
      try {
        const expected = await runCli(
          [
            BIN,
            ...flags,
            "--prompt",
            PROMPT,
            "--temperature",
            "0",
            "--max-new-tokens",
            "40",
          ],
          `${cache}/run`,
        );
        assert.ok(expected.length > 40, expected);
        let url: string | null = null;
        for (let i = 0; i < 600 && !url; i++) {
          url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr)?.[1] ??
            null;
          if (!url) await new Promise((r) => setTimeout(r, 100));
        }
        assert.ok(url, `serve did not start:\n${stderr}`);
        const health = await fetch(`${url}/health`);
        assert.equal(health.status, 200);
        assert.equal((await health.json()).status, "ok");

        const api = client(url);
        const models = await api.models.list();
        assert.deepEqual(models.data.map((m) => m.id), [BIN]);
        const req = {
          model: BIN,
          prompt: PROMPT,
          max_tokens: 40,
          temperature: 0,
        };
        const r = await api.completions.create(req);
        assert.equal(r.choices[0].text + "\n", expected);
        assert.equal(r.choices[0].finish_reason, "length");
        assert.equal(r.usage?.completion_tokens, 40);
        assert.equal(
          r.usage?.prompt_tokens,
          (await storiesModel()).encode(PROMPT).length,
        );
        const stream = await api.completions.create({ ...req, stream: true });
        let text = "";
        let chunks = 0;
        let finish: string | null = null;
        for await (const c of stream) {
          chunks++;
          text += c.choices[0]?.text ?? "";
          finish = c.choices[0]?.finish_reason ?? finish;
        }
        assert.equal(text + "\n", expected);
        assert.ok(chunks > 10, `${chunks} chunks: the text streams`);
        assert.equal(finish, "length");
        // and run's text is llama2.c's greedy story
        assert.ok((await storyAfter(PROMPT)).startsWith(text), text);
      } finally {
        try {
          proc.kill("SIGTERM");
        } catch { /* it has already exited: the status says how */ }
        const status = await proc.status;
        await drained;
        await Deno.remove(cache, { recursive: true });
        assert.equal(status.code, 0, stderr);
        assert.match(stderr, /serve: stopping/);
      }
    },
  );

  gpuTest(
    "serve: 8 concurrent requests (streamed and not) all get their correct texts",
    async () => {
      await withServer({}, async (server) => {
        const api = client(server.url);
        const story = await Deno.readTextFile(EXPECTED);
        const words = story.split(" ");
        // 8 prompts: the story cut after 2..9 words; greedy goes on with the story
        const jobs = Array.from({ length: 8 }, (_, k) => ({
          prompt: words.slice(0, k + 2).join(" "),
          max_tokens: 6 + k,
          stream: k % 2 === 1,
        }));
        const ask = async (j: typeof jobs[number]) => {
          const req = {
            model: "stories260K",
            prompt: j.prompt,
            max_tokens: j.max_tokens,
            temperature: 0,
          };
          if (!j.stream) {
            const r = await api.completions.create(req);
            assert.equal(r.usage?.completion_tokens, j.max_tokens);
            return r.choices[0].text;
          }
          let t = "";
          for await (
            const c of await api.completions.create({ ...req, stream: true })
          ) t += c.choices[0]?.text ?? "";
          return t;
        };
        const alone: string[] = [];
        for (const j of jobs) alone.push(await ask(j));
        let maxWaiting = 0;
        const watch = setInterval(() => {
          maxWaiting = Math.max(maxWaiting, server.scheduler.waiting);
        }, 1);
        const together = await Promise.all(jobs.map(ask));
        clearInterval(watch);
        assert.deepEqual(together, alone);
        for (let k = 0; k < jobs.length; k++) {
          const cont = story.slice(jobs[k].prompt.length);
          assert.ok(together[k].length > 0);
          assert.ok(
            cont.startsWith(together[k]),
            `${JSON.stringify(jobs[k].prompt)} → ${
              JSON.stringify(together[k])
            } is not the story`,
          );
        }
        assert.ok(maxWaiting >= 1, "requests queued behind each other");
        assert.equal(server.scheduler.served, 16);
      });
    },
  );

  gpuTest(
    "serve: an aborted stream cancels its generation at the next pass and leaves the server healthy",
    async () => {
      await withServer({}, async (server, model) => {
        const api = client(server.url);
        const stream = await api.completions.create({
          model: "stories260K",
          prompt: PROMPT,
          max_tokens: 400,
          temperature: 0,
          stream: true,
        });
        let n = 0;
        for await (const _ of stream) {
          if (++n === 3) {
            stream.controller.abort();
            break;
          }
        }
        const t0 = Date.now();
        while (server.scheduler.running > 0 && Date.now() - t0 < 20_000) {
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.equal(server.scheduler.running, 0);
        assert.equal(model.lastStats?.stopReason, "abort");
        assert.ok(
          model.lastStats!.newTokens < 400,
          `${model.lastStats!.newTokens}`,
        );
        // an unstreamed answer whose client goes away is cancelled too
        const gone = new AbortController();
        const req = api.completions.create({
          model: "stories260K",
          prompt: PROMPT,
          max_tokens: 400,
          temperature: 0,
        }, { signal: gone.signal });
        while (server.scheduler.running === 0) {
          await new Promise((r) => setTimeout(r, 5));
        }
        gone.abort();
        await assert.rejects(req, OpenAI.APIUserAbortError);
        const t1 = Date.now();
        while (server.scheduler.running > 0 && Date.now() - t1 < 20_000) {
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.equal(model.lastStats?.stopReason, "abort");
        assert.ok(model.lastStats!.newTokens < 400);
        const health = await fetch(`${server.url}/health`);
        assert.equal(health.status, 200);
        assert.deepEqual(await health.json(), {
          status: "ok",
          model: "stories260K",
          running: 0,
          waiting: 0,
        });
        const r = await api.completions.create({
          model: "stories260K",
          prompt: PROMPT,
          max_tokens: 12,
          temperature: 0,
        });
        assert.ok((await storyAfter(PROMPT)).startsWith(r.choices[0].text));
        assert.equal(model.lastStats?.stopReason, "length");
      });
    },
  );

  gpuTest(
    "serve: invalid JSON, negative max_tokens, an oversized body and other bad requests get 4xx OpenAI errors; the server keeps serving",
    async () => {
      await withServer({}, async (server) => {
        const url = server.url;
        const api = client(url);
        const isError = async (r: Response, status: number) => {
          assert.equal(r.status, status);
          const body = await r.json();
          assert.equal(typeof body.error.message, "string");
          assert.equal(typeof body.error.type, "string");
          assert.ok("param" in body.error && "code" in body.error);
          return body.error;
        };
        const post = (path: string, body: BodyInit) =>
          fetch(url + path, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body,
          });
        // invalid JSON
        const e1 = await isError(await post("/v1/completions", "{oops"), 400);
        assert.equal(e1.type, "invalid_request_error");
        // negative max_tokens, through the official client
        await assert.rejects(
          api.completions.create({
            model: "stories260K",
            prompt: "x",
            max_tokens: -5,
          }),
          (e: unknown) => {
            assert.ok(e instanceof OpenAI.BadRequestError, String(e));
            assert.equal(e.status, 400);
            assert.equal(e.param, "max_tokens");
            return true;
          },
        );
        // an oversized body (over the 1 MB default)
        const big = JSON.stringify({
          model: "m",
          prompt: "x".repeat(1_100_000),
        });
        await isError(await post("/v1/completions", big), 413);
        // max_tokens beyond the context
        const e4 = await isError(
          await post(
            "/v1/completions",
            JSON.stringify({ prompt: PROMPT, max_tokens: 100_000 }),
          ),
          400,
        );
        assert.equal(e4.code, "context_length_exceeded");
        // no chat template: chat is refused, through the client
        await assert.rejects(
          api.chat.completions.create({
            model: "stories260K",
            messages: [{ role: "user", content: "hi" }],
          }),
          OpenAI.BadRequestError,
        );
        await isError(await fetch(`${url}/v1/nothing`), 404);
        await isError(await fetch(`${url}/v1/completions`), 405);
        // unknown fields are ignored; the server still answers correctly
        const r = await post(
          "/v1/completions",
          JSON.stringify({
            model: "stories260K",
            prompt: PROMPT,
            max_tokens: 8,
            temperature: 0,
            frequency_penalty: 0,
            user: "me",
            some_future_field: { a: 1 },
          }),
        );
        assert.equal(r.status, 200);
        const text = (await r.json()).choices[0].text;
        assert.ok((await storyAfter(PROMPT)).startsWith(text) && text !== "");
      });
    },
  );

  gpuTest(
    "serve: with an API key, /v1 needs the Bearer key; /health does not",
    async () => {
      await withServer({ apiKey: "sekret" }, async (server) => {
        await assert.rejects(
          client(server.url, "wrong").models.list(),
          OpenAI.AuthenticationError,
        );
        const none = await fetch(`${server.url}/v1/models`);
        assert.equal(none.status, 401);
        assert.equal((await none.json()).error.code, "invalid_api_key");
        const list = await client(server.url, "sekret").models.list();
        assert.equal(list.data[0].id, "stories260K");
        assert.equal((await fetch(`${server.url}/health`)).status, 200);
      });
    },
  );

  gpuTest(
    "serve: chat completions through the template equal run on the rendered prompt, streamed or not",
    async () => {
      const { shards } = await tinyShards("serve-llama", {
        arch: "llama",
        dtype: "F32",
      });
      const model = await AutoModel.fromPretrained(shards, { gpu: gpu! });
      const tok = model.tokenizer!;
      assert.equal(tok.chatTemplate, TINY_CHAT_TEMPLATE);
      const server = await startServer({
        model,
        modelId: "tiny",
        chatTemplate: tok.chatTemplate,
        port: 0,
      });
      try {
        const messages = [
          { role: "system" as const, content: "Be brief." },
          { role: "user" as const, content: "Once upon a time" },
          { role: "assistant" as const, content: "there was a girl" },
          { role: "user" as const, content: "Lily?" },
        ];
        // the prompt rendered here, independently of the server's session
        const ids = tok.encode(
          renderChatTemplate(TINY_CHAT_TEMPLATE, {
            messages,
            addGenerationPrompt: true,
            specialTokens: tok.specialTokens,
          }),
          { addSpecialTokens: false },
        );
        const cache = await Deno.makeTempDir({ prefix: "strata-serve-chat-" });
        let expected: string;
        try {
          const out = await runCli([
            shards,
            "--prompt-ids",
            ids.join(","),
            "--temperature",
            "0",
            "--max-new-tokens",
            "12",
            "--json",
          ], cache);
          expected = JSON.parse(out).text;
        } finally {
          await Deno.remove(cache, { recursive: true });
        }
        const api = client(server.url);
        const req = { model: "tiny", messages, max_tokens: 12, temperature: 0 };
        const r = await api.chat.completions.create(req);
        assert.equal(r.object, "chat.completion");
        assert.equal(r.choices[0].message.role, "assistant");
        assert.equal(r.choices[0].message.content, expected);
        assert.equal(r.usage?.prompt_tokens, ids.length);
        let text = "";
        let role: string | undefined;
        for await (
          const c of await api.chat.completions.create({
            ...req,
            stream: true,
            stream_options: { include_usage: true },
          })
        ) {
          if (c.usage) {
            assert.equal(c.usage.prompt_tokens, ids.length);
            continue;
          }
          role ??= c.choices[0].delta.role;
          text += c.choices[0].delta.content ?? "";
        }
        assert.equal(role, "assistant");
        assert.equal(text, expected);
      } finally {
        await server.shutdown();
        await model.dispose();
      }
    },
  );
}
