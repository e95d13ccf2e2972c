// Client-side scatter-gather: calls larger than a host takes are split across the pool, against node:http servers
// standing in for GPU hosts that refuse requests over a limit the way real services do.

import { afterEach, describe, expect, it } from "vitest";
import {
  cappedService,
  codeRefusal,
  fakeHost,
  fastApiRefusal,
  frontRefusal,
  inputsOf,
  json,
  scoreOf,
  seedRefusal,
  vectorOf,
  type FakeHost,
  type Handler,
} from "./fakeHosts.js";
import { registerWith } from "./mockApi.js";

const open: FakeHost[] = [];
async function host(handler: Handler): Promise<FakeHost> {
  const h = await fakeHost(handler);
  open.push(h);
  return h;
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((h) => h.close()));
});

const texts = (n: number) => Array.from({ length: n }, (_, i) => `text number ${i}`);
const computeRequests = (h: FakeHost) => h.received.filter((r) => r.path === "/embed" || r.path === "/bertscore");
const served = (h: FakeHost, limit: number) => computeRequests(h).filter((r) => inputsOf(r.body as never) <= limit);

type Embedded = { embeddings: { embeddings: number[][]; dimensions: number }; host: string; parts?: Array<{ host: string; from: number; to: number }> };

describe("a call larger than a host takes is split across the pool", () => {
  it("gpu_embed of 2,000 texts through two hosts that each take 300: both serve parts, order kept, vectors as unsplit", async () => {
    const a = await host(cappedService("a", 300, frontRefusal));
    const b = await host(cappedService("b", 300, frontRefusal));
    const unlimited = await host(cappedService("u", Infinity, frontRefusal));
    const input = texts(2000);

    const { tool } = registerWith({ hosts: [{ name: "a", url: a.url }, { name: "b", url: b.url }] });
    const result = await tool("gpu_embed").execute("1", { texts: input });
    expect(result.isError).toBeUndefined();
    const details = result.details as Embedded;

    const { tool: whole } = registerWith({ hosts: [{ name: "u", url: unlimited.url }] });
    const unsplit = (await whole("gpu_embed").execute("2", { texts: input })).details as Embedded;
    expect(unsplit.parts).toBeUndefined();
    expect(computeRequests(unlimited)).toHaveLength(1);

    expect(details.embeddings.embeddings).toHaveLength(2000);
    expect(details.embeddings.embeddings).toEqual(input.map(vectorOf));
    expect(details.embeddings.embeddings).toEqual(unsplit.embeddings.embeddings);
    // The limit the host named (300) sizes the parts: 7 even parts in order, spread over both hosts.
    expect(details.parts).toHaveLength(7);
    expect(details.parts!.map((p) => p.to - p.from)).toEqual([286, 286, 286, 286, 286, 286, 284]);
    expect(details.parts!.every((p, i) => p.from === (i === 0 ? 0 : details.parts![i - 1].to))).toBe(true);
    expect(served(a, 300).length).toBeGreaterThan(0);
    expect(served(b, 300).length).toBeGreaterThan(0);
    expect(served(a, 300).length + served(b, 300).length).toBe(7);
    expect(new Set(details.parts!.map((p) => p.host))).toEqual(new Set(["a", "b"]));
    expect(result.content[0].text).toContain("Embedded 2000 text(s)");
    expect(result.content[0].text).toMatch(/Split into 7 requests over (a, b|b, a), because a answered 400: .*at most 300/);
  });

  it("least-busy spreads the parts of one call over the hosts rather than sending them all to the idlest", async () => {
    const a = await host(cappedService("a", 100, frontRefusal));
    const b = await host(cappedService("b", 100, frontRefusal));
    const { tool } = registerWith({ hosts: [{ name: "a", url: a.url }, { name: "b", url: b.url }], loadBalancing: "least-busy" });
    const result = await tool("gpu_embed").execute("1", { texts: texts(800) });
    expect((result.details as Embedded).embeddings.embeddings).toEqual(texts(800).map(vectorOf));
    expect(served(a, 100).length).toBeGreaterThanOrEqual(2);
    expect(served(b, 100).length).toBeGreaterThanOrEqual(2);
  });

  it("a 413 from a seed-like host, with no limit named, halves the parts until they pass", async () => {
    const seed = await host(cappedService("seed", 100, seedRefusal));
    const { tool } = registerWith({ hosts: [{ name: "seed", url: seed.url }] });
    const result = await tool("gpu_embed").execute("1", { texts: texts(300) });
    expect(result.isError).toBeUndefined();
    expect((result.details as Embedded).embeddings.embeddings).toEqual(texts(300).map(vectorOf));
    const sizes = computeRequests(seed).map((r) => (r.body as { texts: string[] }).texts.length);
    // 300 refused, 2 × 150 refused, 4 × 75 served.
    expect(sizes.filter((n) => n === 300)).toHaveLength(1);
    expect(sizes.filter((n) => n === 150)).toHaveLength(2);
    expect(sizes.filter((n) => n === 75)).toHaveLength(4);
    expect(sizes).toHaveLength(7);
    expect(result.content[0].text).toContain("because seed answered 413");
  });

  it.each([
    ["a 400 that names only a size code (too_many_inputs)", codeRefusal],
    ["FastAPI's 422 for a list over its max_length", fastApiRefusal],
  ])("%s splits too", async (_name, refusal) => {
    const h = await host(cappedService("h", 64, refusal));
    const { tool } = registerWith({ hosts: [{ name: "h", url: h.url }] });
    const result = await tool("gpu_embed").execute("1", { texts: texts(200) });
    expect(result.isError).toBeUndefined();
    expect((result.details as Embedded).embeddings.embeddings).toEqual(texts(200).map(vectorOf));
    expect(computeRequests(h).filter((r) => inputsOf(r.body as never) <= 64).length).toBeGreaterThanOrEqual(4);
  });

  it("a part that fails on one host is retried on another, only that part", async () => {
    let failures = 0;
    const good = await host(cappedService("good", 100, frontRefusal));
    const capped = cappedService("flaky", 100, frontRefusal);
    const flaky = await host((req, res) => {
      // Refuses the whole call for its size like the others, then breaks on its first part.
      if (req.path === "/embed" && inputsOf(req.body as never) <= 100 && failures++ === 0) return json(res, 500, { detail: "GPU fell over" });
      return capped(req, res);
    });
    const { tool } = registerWith({ hosts: [{ name: "flaky", url: flaky.url }, { name: "good", url: good.url }], healthCheckIntervalSeconds: 0 });
    const result = await tool("gpu_embed").execute("1", { texts: texts(400) });
    expect(result.isError).toBeUndefined();
    expect((result.details as Embedded).embeddings.embeddings).toEqual(texts(400).map(vectorOf));
    expect(failures).toBeGreaterThanOrEqual(1);
    // 4 parts served in all; the one that broke on flaky was served by good.
    expect(served(good, 100).length + served(flaky, 100).length - 1).toBe(4);
  });

  it("gpu_bertscore splits multi-reference pairs without separating a candidate from its references", async () => {
    const a = await host(cappedService("a", 40, frontRefusal));
    const b = await host(cappedService("b", 40, frontRefusal));
    const candidates = texts(60).map((t) => `candidate ${t}`);
    // 1 to 3 references per candidate: parts are cut by inputs, candidates and references together.
    const references = candidates.map((c, i) => Array.from({ length: 1 + (i % 3) }, (_, r) => `${c} reference ${r}`));
    const { tool } = registerWith({ hosts: [{ name: "a", url: a.url }, { name: "b", url: b.url }] });
    const result = await tool("gpu_bertscore").execute("1", { candidates, references, model_type: "m", rescale_with_baseline: true });
    expect(result.isError).toBeUndefined();
    const scores = result.details.bertscore as { f1: number[]; precision: number[]; recall: number[]; num_layers: number };
    const expected = candidates.map((c, i) => scoreOf(c, references[i]));
    expect(scores.f1).toEqual(expected);
    expect(scores.precision).toEqual(expected);
    expect(scores.num_layers).toBe(4);
    const parts = [...served(a, 40), ...served(b, 40)];
    expect(parts.length).toBeGreaterThan(1);
    expect(served(a, 40).length).toBeGreaterThan(0);
    expect(served(b, 40).length).toBeGreaterThan(0);
    for (const part of parts) {
      const body = part.body as { candidates: string[]; references: string[][]; model_type: string; rescale_with_baseline: boolean };
      expect(body.references).toHaveLength(body.candidates.length);
      body.candidates.forEach((c, i) => expect(references[candidates.indexOf(c)]).toEqual(body.references[i]));
      expect(body).toMatchObject({ model_type: "m", rescale_with_baseline: true });
    }
    expect(parts.reduce((n, p) => n + (p.body as { candidates: string[] }).candidates.length, 0)).toBe(60);
  });

  it("gpu_bertscore with idf is not split, since parts would get other idf weights: the call fails and says why", async () => {
    const a = await host(cappedService("a", 40, frontRefusal));
    const b = await host(cappedService("b", 40, frontRefusal));
    const candidates = texts(30);
    const { tool } = registerWith({ hosts: [{ name: "a", url: a.url }, { name: "b", url: b.url }] });
    const result = await tool("gpu_bertscore").execute("1", { candidates, references: candidates, idf: true });
    expect(result.isError).toBe(true);
    expect(result.content[0].text).toContain("at most 40");
    expect(result.content[0].text).toContain("cannot be split");
    expect(result.content[0].text).toContain("idf");
    expect(computeRequests(a).length + computeRequests(b).length).toBe(1);
    // Without idf the same call is split and served.
    const plain = await tool("gpu_bertscore").execute("2", { candidates, references: candidates });
    expect(plain.isError).toBeUndefined();
  });

  it("halves down to one item, then reports which item is too large; other reasons are not split", async () => {
    const refusing = await host((req, res) => {
      const body = req.body as { texts?: string[] };
      if (req.path === "/embed" && body.texts?.some((t) => t.startsWith("HUGE"))) return seedRefusal(res, 0, 0);
      if (req.path === "/embed" && body.texts?.some((t) => t.startsWith("LONG"))) return json(res, 400, { detail: "'texts[0]' has 600 tokens; at most 512 fit the model.", code: "input_too_long" });
      return cappedService("r", Infinity, seedRefusal)(req, res);
    });
    const { tool } = registerWith({ hosts: [{ name: "r", url: refusing.url }] });
    const input = texts(64);
    input[37] = "HUGE text";
    const result = await tool("gpu_embed").execute("1", { texts: input });
    expect(result.isError).toBe(true);
    expect(result.content[0].text).toContain("texts[37] alone is too large for a request: r answered 413");
    // One path of halvings down to texts[37] (64, 32, 16, 8, 4, 2, 1), not every part at every level.
    expect(computeRequests(refusing).length).toBeLessThan(30);

    const before = computeRequests(refusing).length;
    const long = texts(64);
    long[5] = "LONG text";
    const tooLong = await tool("gpu_embed").execute("2", { texts: long });
    expect(tooLong.isError).toBe(true);
    expect(tooLong.content[0].text).toContain("at most 512 fit the model");
    expect(computeRequests(refusing).length - before).toBe(1);
  });

  it("a call over limits.maxRequestBytes is split before sending; a text that alone is over it is refused here", async () => {
    const h = await host(cappedService("h", Infinity, seedRefusal));
    const { tool } = registerWith({ hosts: [{ name: "h", url: h.url }], limits: { maxRequestBytes: 2_000 } });
    const input = texts(100).map((t) => `${t} ${"x".repeat(80)}`);
    const result = await tool("gpu_embed").execute("1", { texts: input });
    expect(result.isError).toBeUndefined();
    expect((result.details as Embedded).embeddings.embeddings).toEqual(input.map(vectorOf));
    const bodies = computeRequests(h).map((r) => Buffer.byteLength(JSON.stringify(r.body)));
    expect(bodies.length).toBeGreaterThan(1);
    expect(Math.max(...bodies)).toBeLessThanOrEqual(2_000);
    expect(result.content[0].text).toContain("over limits.maxRequestBytes");

    const before = computeRequests(h).length;
    const big = await tool("gpu_embed").execute("2", { texts: ["short", "y".repeat(3_000)] });
    expect(big.isError).toBe(true);
    expect(big.content[0].text).toContain("texts[1] alone makes a request body of");
    const idf = await tool("gpu_bertscore").execute("3", { candidates: input, references: input, idf: true });
    expect(idf.isError).toBe(true);
    expect(idf.content[0].text).toContain("cannot be split");
    expect(computeRequests(h).length).toBe(before);
  });

  it("cancelling the tool call cancels every part", async () => {
    let started = 0;
    const slow = (name: string) =>
      host(async (req, res) => {
        if (req.path === "/embed" && inputsOf(req.body as never) > 50) return frontRefusal(res, inputsOf(req.body as never), 50);
        if (req.path === "/embed") {
          started++;
          await new Promise((r) => setTimeout(r, 5_000));
        }
        return cappedService(name, Infinity, seedRefusal)(req, res);
      });
    const a = await slow("a");
    const b = await slow("b");
    const { tool } = registerWith({ hosts: [{ name: "a", url: a.url }, { name: "b", url: b.url }] });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const begun = Date.now();
    const result = await tool("gpu_embed").execute("1", { texts: texts(500) }, controller.signal);
    expect(result.isError).toBe(true);
    expect(Date.now() - begun).toBeLessThan(2_000);
    // 10 parts, at most 4 in flight (2 per host); none is sent after the cancel.
    const sent = started;
    expect(sent).toBeLessThanOrEqual(4);
    await new Promise((r) => setTimeout(r, 300));
    expect(started).toBe(sent);
  });
});
