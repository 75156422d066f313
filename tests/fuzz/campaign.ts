/**
 * The large fuzz campaign (run by hand, not in CI): thousands of mutated
 * inputs per parser, run in worker subprocesses so that a hang (no progress
 * for 5 s) or a resident set above 1 GiB is caught and attributed to one
 * case, which is then skipped.
 *
 *   deno run -A tests/fuzz/campaign.ts [--count 3000] [--seed 1414] [--only gguf,...]
 *
 * It prints, per parser: inputs, successes, StrataErrors, crashes (other
 * errors or multi-line messages), hangs, and the peak resident set of its
 * workers. Any crash or hang is listed with its case number; replay one with
 * FUZZ_SEED and the case number through tests/fuzz/_targets.ts.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { allTargets, runCase } from "./_targets.ts";
import { caseRng } from "./_mutate.ts";

const HANG_MS = 5000;
const RSS_LIMIT_KB = 1024 * 1024;
const BATCH = 500;

function peakKb(pid: number | "self", field: "VmHWM" | "VmRSS"): number {
  try {
    const s = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = new RegExp(`${field}:\\s+(\\d+)`).exec(s);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

async function worker(name: string, seed: number, start: number, n: number) {
  const tmp = await Deno.makeTempDir({ prefix: "strata-campaign-" });
  try {
    const t = (await allTargets(tmp, { realShare: 0.5 })).find((x) =>
      x.name === name
    )!;
    const enc = new TextEncoder();
    const say = (s: string) => Deno.stdout.writeSync(enc.encode(s + "\n"));
    for (let i = start; i < start + n; i++) {
      say(`S ${i}`);
      const o = await runCase(t, caseRng(seed, i));
      say(
        `E ${i} ${o.kind}${
          o.kind === "crash" ? " " + JSON.stringify(o.message) : ""
        }`,
      );
    }
    say(`PEAK ${peakKb("self", "VmHWM")}`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

interface Tally {
  inputs: number;
  ok: number;
  strata: number;
  crashes: string[];
  hangs: number[];
  oversize: number[];
  /** Cases that passed 5 s in a batch but finished in time when run alone. */
  slow: number[];
  peakKb: number;
  seconds: number;
}

/**
 * Whether case `i` still passes 5 s when run alone in a fresh worker, the
 * clock starting when the case starts (not at the worker's start-up).
 */
async function hangsAlone(
  name: string,
  seed: number,
  i: number,
): Promise<boolean> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--worker",
      name,
      String(seed),
      String(i),
      "1",
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let started = 0;
  let hung = false;
  const watch = setInterval(() => {
    if (started > 0 && performance.now() - started > HANG_MS) {
      hung = true;
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
    }
  }, 100);
  const dec = new TextDecoder();
  for await (const chunk of child.stdout) {
    if (dec.decode(chunk).includes(`S ${i}`) && started === 0) {
      started = performance.now();
    }
  }
  await child.status;
  clearInterval(watch);
  return hung;
}

/** Runs cases [start, end) of `name` in workers, restarting after a hang or kill. */
async function campaign(
  name: string,
  seed: number,
  count: number,
): Promise<Tally> {
  const tally: Tally = {
    inputs: 0,
    ok: 0,
    strata: 0,
    crashes: [],
    hangs: [],
    oversize: [],
    slow: [],
    peakKb: 0,
    seconds: 0,
  };
  const t0 = performance.now();
  let next = 0;
  while (next < count) {
    const n = Math.min(BATCH, count - next);
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL(import.meta.url).pathname,
        "--worker",
        name,
        String(seed),
        String(next),
        String(n),
      ],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    let current = next;
    let last = performance.now();
    let killed: "hang" | "rss" | null = null;
    const watch = setInterval(() => {
      const rss = peakKb(child.pid, "VmRSS");
      tally.peakKb = Math.max(tally.peakKb, rss);
      if (rss > RSS_LIMIT_KB) killed = "rss";
      else if (performance.now() - last > HANG_MS) killed = "hang";
      if (killed) {
        try {
          child.kill("SIGKILL");
        } catch { /* exited */ }
      }
    }, 100);
    let buf = "";
    const dec = new TextDecoder();
    let done = next;
    for await (const chunk of child.stdout) {
      buf += dec.decode(chunk, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        last = performance.now();
        const [tag, a, kind, ...rest] = line.split(" ");
        if (tag === "S") current = Number(a);
        else if (tag === "E") {
          tally.inputs++;
          done = Number(a) + 1;
          if (kind === "ok") tally.ok++;
          else if (kind === "strata") tally.strata++;
          else tally.crashes.push(`case ${a}: ${JSON.parse(rest.join(" "))}`);
        } else if (tag === "PEAK") {
          tally.peakKb = Math.max(tally.peakKb, Number(a));
        }
      }
    }
    await child.status;
    clearInterval(watch);
    if (
      killed === "hang" && !tally.slow.includes(current) &&
      !(await hangsAlone(name, seed, current))
    ) {
      // Slow only under load (2 shared cores): alone it finished in time.
      tally.slow.push(current);
      next = current; // run it again in the next batch, counted there
    } else if (killed !== null) {
      tally.inputs++;
      (killed === "hang" ? tally.hangs : tally.oversize).push(current);
      next = current + 1;
    } else next = Math.max(done, next + n);
  }
  tally.seconds = (performance.now() - t0) / 1000;
  return tally;
}

if (import.meta.main) {
  if (Deno.args[0] === "--worker") {
    const [, name, seed, start, n] = Deno.args;
    await worker(name, Number(seed), Number(start), Number(n));
  } else {
    const { values } = parseArgs({
      args: Deno.args,
      options: {
        count: { type: "string", default: "3000" },
        seed: { type: "string", default: "1414" },
        only: { type: "string" },
      },
    });
    const names = values.only?.split(",") ??
      [
        "safetensors",
        "gguf",
        "llama2c",
        "manifest",
        "config",
        "tokenizer",
        "template",
      ];
    console.log(
      "parser       inputs      ok  StrataError  crashes  hangs>5s  RSS>1GiB  peak RSS MiB  seconds",
    );
    for (const name of names) {
      const t = await campaign(name, Number(values.seed), Number(values.count));
      console.log(
        `${name.padEnd(11)} ${String(t.inputs).padStart(7)} ${
          String(t.ok).padStart(7)
        } ${String(t.strata).padStart(12)} ${
          String(t.crashes.length).padStart(8)
        } ${String(t.hangs.length).padStart(9)} ${
          String(t.oversize.length).padStart(9)
        } ${(t.peakKb / 1024).toFixed(0).padStart(13)} ${
          t.seconds.toFixed(0).padStart(8)
        }`,
      );
      for (const c of t.crashes.slice(0, 10)) console.log(`  crash ${c}`);
      if (t.hangs.length) console.log(`  hangs at cases ${t.hangs.join(", ")}`);
      if (t.slow.length) {
        console.log(
          `  over 5 s in a batch under load, in time alone (rerun): cases ${
            t.slow.join(", ")
          }`,
        );
      }
      if (t.oversize.length) {
        console.log(`  RSS > 1 GiB at cases ${t.oversize.join(", ")}`);
      }
    }
  }
}
