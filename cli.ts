/**
 * The `strata` command line: `deno run -A cli.ts <command> [flags]`.
 *
 * This file only dispatches to the subcommands in `lib/cli/` and turns
 * errors into one line on stderr and a non-zero exit code.
 *
 * @module
 */
import { StrataError } from "./lib/errors.ts";

const HELP =
  `strata — run large language models on small GPUs by streaming layers

Usage: deno run -A cli.ts <command> [flags]

Commands:
  run <model>     generate from a model (shard dir, HF dir, .gguf, llama2.c .bin, or org/name)
  chat <model>    interactive chat through the model's chat template
  serve <model>   OpenAI-compatible HTTP server (/v1/completions, /v1/chat/completions)
  split <source>  convert a checkpoint into per-layer shard files once
  info <model>    describe a model or shard directory
  plan <model>    residency plan and predicted s/token under --gpu-memory (no GPU needed)
  bench           benchmark the streaming engine (--kernels: the WGSL kernels)
  demo            make a tiny seeded model, split it and run it streamed

Run 'deno run -A cli.ts <command> --help' for a command's flags.
Set STRATA_DEBUG=1 to see stack traces.`;

/** One subcommand: parses its own flags and returns the exit code. */
type Command = (args: string[]) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  run: async () => (await import("./lib/cli/run.ts")).main,
  chat: async () => (await import("./lib/cli/chat.ts")).main,
  serve: async () => (await import("./lib/cli/serve.ts")).main,
  split: async () => (await import("./lib/cli/split.ts")).main,
  info: async () => (await import("./lib/cli/info.ts")).main,
  plan: async () => (await import("./lib/cli/plan.ts")).main,
  bench: async () => (await import("./lib/cli/bench.ts")).main,
  demo: async () => (await import("./lib/cli/demo.ts")).main,
};

/**
 * Runs the CLI with `args` and returns the process exit code.
 *
 * @example
 * ```ts ignore
 * import { main } from "./cli.ts";
 * Deno.exit(await main(["info", "shards/"]));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (
    name === undefined || name === "--help" || name === "-h" || name === "help"
  ) {
    console.log(HELP);
    return name === undefined ? 2 : 0;
  }
  const load = COMMANDS[name];
  if (!load) {
    const { closestFlag } = await import("./lib/cli/_args.ts");
    const guess = closestFlag(name, Object.keys(COMMANDS));
    console.error(
      `strata: unknown command '${name}'${
        guess === null ? "" : ` (did you mean '${guess}'?)`
      }. Commands: ${Object.keys(COMMANDS).join(", ")}`,
    );
    return 2;
  }
  try {
    return await (await load())(rest);
  } catch (err) {
    if (Deno.env.get("STRATA_DEBUG")) console.error(err);
    const message = err instanceof Error ? err.message : String(err);
    const prefix = err instanceof StrataError ? "error" : "internal error";
    console.error(`strata: ${prefix}: ${message.split("\n")[0]}`);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
