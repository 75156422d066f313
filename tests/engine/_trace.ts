/**
 * Checks of a trace document (lib/engine/trace.ts) against the Chrome
 * trace-event format as Perfetto reads it, and a small XML well-formedness
 * parser for the SVG timeline.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { TraceEvent, TraceJson } from "../../lib/engine/trace.ts";

/**
 * Asserts that `text` is a trace-event JSON document: every event has a name,
 * a phase X / C / M, finite non-negative µs, integer pid and tid; spans have
 * a duration; counters have numeric args; every track in use is named; spans
 * on one track are nested or disjoint. Returns the parsed document.
 */
export function assertTraceFormat(text: string): TraceJson {
  const doc = JSON.parse(text) as TraceJson;
  assert.ok(Array.isArray(doc.traceEvents), "traceEvents is an array");
  const named = new Set<number>();
  const used = new Set<number>();
  for (const e of doc.traceEvents) {
    assert.equal(typeof e.name, "string", JSON.stringify(e));
    assert.ok(["X", "C", "M"].includes(e.ph), `phase of ${JSON.stringify(e)}`);
    assert.ok(Number.isFinite(e.ts) && e.ts >= 0, `ts of ${e.name}`);
    assert.ok(Number.isInteger(e.pid) && Number.isInteger(e.tid));
    if (e.ph === "M") {
      assert.ok(
        ["process_name", "thread_name", "thread_sort_index"].includes(e.name),
      );
      if (e.name === "thread_name") named.add(e.tid);
    } else if (e.ph === "X") {
      assert.ok(Number.isFinite(e.dur) && e.dur! >= 0, `dur of ${e.name}`);
      used.add(e.tid);
    } else {
      for (const v of Object.values(e.args ?? {})) {
        assert.equal(typeof v, "number", `counter ${e.name}`);
      }
    }
  }
  for (const tid of used) assert.ok(named.has(tid), `track ${tid} is named`);
  // spans on a track must nest or be disjoint (0.01 µs of float slack)
  const byTid = new Map<number, TraceEvent[]>();
  for (const e of doc.traceEvents) {
    if (e.ph !== "X") continue;
    byTid.set(e.tid, [...(byTid.get(e.tid) ?? []), e]);
  }
  for (const [tid, evs] of byTid) {
    evs.sort((a, b) => a.ts - b.ts || b.dur! - a.dur!);
    const ends: number[] = [];
    for (const e of evs) {
      while (ends.length && ends.at(-1)! <= e.ts + 0.01) ends.pop();
      if (ends.length) {
        assert.ok(
          e.ts + e.dur! <= ends.at(-1)! + 0.01,
          `track ${tid}: ${e.name} at ${e.ts} overlaps its parent without nesting`,
        );
      }
      ends.push(e.ts + e.dur!);
    }
  }
  return doc;
}

/** An XML element as {@link parseXml} returns it. */
export interface XmlElement {
  /** Tag name. */
  name: string;
  /** Attributes. */
  attrs: Record<string, string>;
  /** Child elements. */
  children: XmlElement[];
  /** Text content (concatenated, unescaped). */
  text: string;
}

/**
 * Parses well-formed XML without DTDs, comments or CDATA (what the SVG
 * writer emits); throws on anything malformed: unbalanced or crossed tags,
 * bad attributes, stray `<` or `&`.
 */
export function parseXml(src: string): XmlElement {
  const root: XmlElement = {
    name: "#document",
    attrs: {},
    children: [],
    text: "",
  };
  const stack = [root];
  const entity = (s: string) =>
    s.replace(/&(amp|lt|gt|quot|apos|#\d+);|&/g, (_m, name) => {
      if (!name) throw new Error(`XML: stray & in ${JSON.stringify(s)}`);
      return ({ amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" } as Record<
        string,
        string
      >)[name] ?? String.fromCharCode(Number(name.slice(1)));
    });
  let i = 0;
  while (i < src.length) {
    const lt = src.indexOf("<", i);
    const text = src.slice(i, lt < 0 ? src.length : lt);
    if (text.includes(">")) throw new Error("XML: stray >");
    stack.at(-1)!.text += entity(text);
    if (lt < 0) break;
    const gt = src.indexOf(">", lt);
    if (gt < 0) throw new Error("XML: unterminated tag");
    const tag = src.slice(lt + 1, gt);
    i = gt + 1;
    if (tag.startsWith("?")) continue; // <?xml ...?>
    if (tag.startsWith("/")) {
      const open = stack.pop()!;
      if (open.name !== tag.slice(1).trim() || stack.length === 0) {
        throw new Error(`XML: </${tag.slice(1)}> closes <${open.name}>`);
      }
      continue;
    }
    const selfClosing = tag.endsWith("/");
    const body = selfClosing ? tag.slice(0, -1) : tag;
    const m = body.match(/^([A-Za-z_][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*$/);
    if (!m) throw new Error(`XML: malformed tag <${tag}>`);
    const attrs: Record<string, string> = {};
    for (const a of m[2].matchAll(/([\w:.-]+)="([^"]*)"/g)) {
      if (a[1] in attrs) throw new Error(`XML: duplicate attribute ${a[1]}`);
      attrs[a[1]] = entity(a[2]);
    }
    const el: XmlElement = { name: m[1], attrs, children: [], text: "" };
    stack.at(-1)!.children.push(el);
    if (!selfClosing) stack.push(el);
  }
  if (stack.length !== 1) {
    throw new Error(`XML: <${stack.at(-1)!.name}> not closed`);
  }
  if (root.children.length !== 1) throw new Error("XML: not one root element");
  if (root.text.trim() !== "") throw new Error("XML: text outside the root");
  return root.children[0];
}

/** Every element under `el` (depth first), `el` included. */
export function allElements(el: XmlElement): XmlElement[] {
  return [el, ...el.children.flatMap(allElements)];
}
