// lib/cli/_args.ts: the flag parsing every subcommand shares.
import assert from "node:assert/strict";
import { numberFlag, parseCommand } from "../../lib/cli/_args.ts";
import { UsageError } from "../../lib/errors.ts";

Deno.test("parseCommand: values, positionals, one-line usage errors", () => {
  const options = {
    out: { type: "string" as const, short: "o" },
    json: { type: "boolean" as const },
  };
  const p = parseCommand({
    command: "split",
    args: ["src", "-o", "dir", "--json"],
    options,
  });
  assert.deepEqual(p.positionals, ["src"]);
  assert.equal(p.values.out, "dir");
  assert.equal(p.values.json, true);
  const bad: [string[], boolean, RegExp][] = [
    [
      ["--bogus"],
      true,
      /^split: Unknown option '--bogus'; see 'split --help'$/,
    ],
    [["--out"], true, /^split: Option '-o, --out <value>' argument missing/],
    [["x"], false, /^split: Unexpected argument 'x'/],
  ];
  for (const [args, positionals, re] of bad) {
    assert.throws(
      () => parseCommand({ command: "split", args, options, positionals }),
      (e: Error) =>
        e instanceof UsageError && re.test(e.message) &&
        !e.message.includes("\n"),
    );
  }
});

Deno.test("numberFlag: absent, valid, and each kind of bad value", () => {
  assert.equal(
    numberFlag("top-k", undefined, { int: true, min: 0 }),
    undefined,
  );
  assert.equal(numberFlag("top-k", "40", { int: true, min: 0 }), 40);
  assert.equal(numberFlag("top-p", "0.9", { int: false, min: 0 }), 0.9);
  for (const v of ["", " ", "1.5", "-1", "abc", "Infinity"]) {
    assert.throws(
      () => numberFlag("top-k", v, { int: true, min: 0 }),
      (e: Error) =>
        e instanceof UsageError &&
        e.message === `--top-k must be an integer >= 0, got '${v}'`,
    );
  }
});
