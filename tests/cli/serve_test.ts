// `serve` flags: help, and bad flags that fail with one line before any
// model loads. (The server itself: tests/server/.)
import assert from "node:assert/strict";
import { main } from "../../lib/cli/serve.ts";
import { main as cli } from "../../cli.ts";
import { UsageError } from "../../lib/errors.ts";

Deno.test("serve: --help explains the endpoints, the queue and the flags", async () => {
  const logged: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => logged.push(a.join(" "));
  try {
    assert.equal(await main(["--help"]), 0);
    assert.equal(await cli(["serve", "-h"]), 0);
    assert.equal(await cli(["--help"]), 0);
  } finally {
    console.log = log;
  }
  const help = logged[0];
  for (
    const s of [
      "/v1/chat/completions",
      "/health",
      "--host ADDR",
      "127.0.0.1",
      "--api-key",
      "STRATA_API_KEY",
      "--max-body-bytes",
      "--gpu-memory",
      "arrival order",
      "curl",
    ]
  ) assert.ok(help.includes(s), `help lacks ${s}`);
  assert.match(logged[2], /serve <model> +OpenAI-compatible/);
});

Deno.test("serve: bad flags fail before a model loads", async () => {
  await assert.rejects(main([]), UsageError);
  await assert.rejects(main(["a", "b"]), UsageError);
  await assert.rejects(
    main(["m", "--bogus"]),
    /serve: Unknown option '--bogus'/,
  );
  await assert.rejects(
    main(["m", "--port=-1"]),
    /--port must be an integer >= 0/,
  );
  await assert.rejects(
    main(["m", "--port", "70000"]),
    /--port must be <= 65535/,
  );
  await assert.rejects(
    main(["m", "--max-body-bytes", "0"]),
    /--max-body-bytes/,
  );
  await assert.rejects(main(["m", "--temperature", "hot"]), /--temperature/);
  await assert.rejects(
    main(["m", "--chat-template", "/nonexistent/t.jinja"]),
    /chat template file not found/,
  );
});
