import { afterEach, describe, expect, it } from "vitest";
import { deadUrl, fakeHost, gpuService, json, type FakeHost } from "./fakeHosts.js";
import { registerWith } from "./mockApi.js";

const open: FakeHost[] = [];
async function host(handler: Parameters<typeof fakeHost>[0]): Promise<FakeHost> {
  const h = await fakeHost(handler);
  open.push(h);
  return h;
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((h) => h.close()));
});

describe("tools against fake GPU hosts (node:http servers standing in for GPU machines)", () => {
  it("sends each host's own key, or the fallback key, as X-API-Key", async () => {
    const a = await host(gpuService("a"));
    const b = await host(gpuService("b"));
    const { tool } = registerWith({ hosts: [{ name: "a", url: a.url, apiKey: "key-a" }, { name: "b", url: b.url }], apiKey: "fallback" });
    await tool("gpu_embed").execute("1", { texts: ["x"] });
    await tool("gpu_embed").execute("2", { texts: ["y"] });
    expect(a.received.find((r) => r.path === "/embed")?.headers["x-api-key"]).toBe("key-a");
    expect(b.received.find((r) => r.path === "/embed")?.headers["x-api-key"]).toBe("fallback");
  });

  it("round-robin alternates between hosts", async () => {
    const a = await host(gpuService("a"));
    const b = await host(gpuService("b"));
    const { tool } = registerWith({ hosts: [{ name: "a", url: a.url }, { name: "b", url: b.url }] });
    const hosts = [];
    for (let i = 0; i < 4; i++) hosts.push((await tool("gpu_embed").execute(String(i), { texts: ["x"] })).details.host);
    expect(hosts).toEqual(["a", "b", "a", "b"]);
  });

  it("least-busy picks the host whose /status shows less work", async () => {
    const busy = await host(gpuService("busy", 7));
    const idle = await host(gpuService("idle", 0));
    const { tool } = registerWith({ hosts: [{ name: "busy", url: busy.url }, { name: "idle", url: idle.url }], loadBalancing: "least-busy" });
    for (let i = 0; i < 3; i++) {
      expect((await tool("gpu_bertscore").execute(String(i), { candidates: ["a"], references: ["b"] })).details.host).toBe("idle");
    }
    expect(busy.received.some((r) => r.path === "/status")).toBe(true);
    expect(busy.received.some((r) => r.path === "/bertscore")).toBe(false);
  });

  it("fails over from a dead host to a live one", async () => {
    const live = await host(gpuService("live"));
    const { tool } = registerWith({ hosts: [{ name: "dead", url: await deadUrl() }, { name: "live", url: live.url }] });
    const result = await tool("gpu_embed").execute("1", { texts: ["a", "b"] });
    expect(result.isError).toBeUndefined();
    expect(result.details.host).toBe("live");
  });

  it("fails over on 5xx and on a timeout", async () => {
    const broken = await host((_req, res) => json(res, 500, { detail: "boom" }));
    const slow = await host(async (_req, res) => {
      await new Promise((r) => setTimeout(r, 3_000));
      json(res, 200, {});
    });
    const live = await host(gpuService("live"));
    const { tool } = registerWith({
      hosts: [{ name: "broken", url: broken.url }, { name: "slow", url: slow.url }, { name: "live", url: live.url }],
      timeout: 1,
    });
    const started = Date.now();
    const result = await tool("gpu_embed").execute("1", { texts: ["a"] });
    expect(result.details.host).toBe("live");
    expect(Date.now() - started).toBeLessThan(2_900);
  });

  it("honours 503 + Retry-After when every host is busy, then succeeds", async () => {
    let calls = 0;
    const busyOnce = await host((req, res) => {
      if (req.path === "/embed" && calls++ === 0) return json(res, 503, { detail: "busy" }, { "Retry-After": "1" });
      return gpuService("h")(req, res);
    });
    const { tool } = registerWith({ hosts: [{ name: "h", url: busyOnce.url }] });
    const started = Date.now();
    const result = await tool("gpu_embed").execute("1", { texts: ["a"] });
    expect(result.isError).toBeUndefined();
    expect(calls).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it("does not retry a 4xx elsewhere and reports the service's message", async () => {
    const rejecting = await host((_req, res) => json(res, 400, { detail: "'texts[0]' must be a string" }));
    const other = await host(gpuService("other"));
    const { tool } = registerWith({ hosts: [{ name: "r", url: rejecting.url }, { name: "o", url: other.url }] });
    const result = await tool("gpu_embed").execute("1", { texts: ["a"] });
    expect(result.isError).toBe(true);
    expect(result.content[0].text).toContain("'texts[0]' must be a string");
    expect(result.details).toMatchObject({ failure: { kind: "rejected" } });
    expect(other.received.filter((r) => r.path === "/embed")).toHaveLength(0);
  });

  it("passes the tool's abort signal to fetch", async () => {
    const hanging = await host(async (_req, res) => {
      await new Promise((r) => setTimeout(r, 5_000));
      json(res, 200, {});
    });
    const { tool } = registerWith({ hosts: [{ name: "h", url: hanging.url }] });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const started = Date.now();
    const result = await tool("gpu_embed").execute("1", { texts: ["a"] }, controller.signal);
    expect(result.isError).toBe(true);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("reports an error when every host is down", async () => {
    const { tool } = registerWith({ hosts: [{ name: "d1", url: await deadUrl() }, { name: "d2", url: await deadUrl() }] });
    const result = await tool("gpu_info").execute("1", {});
    expect(result.isError).toBe(true);
    expect(result.content[0].text).toContain("no GPU host could serve /info");
  });

  it("gpu_health checks every host and keeps the service data under its own key", async () => {
    const live = await host(gpuService("live"));
    const { tool } = registerWith({ hosts: [{ name: "live", url: live.url }, { name: "dead", url: await deadUrl() }] });
    const result = await tool("gpu_health").execute("1", {});
    expect(result.content[0].text).toContain("1/2 GPU host(s) up");
    expect(result.details).not.toHaveProperty("status");
    const health = result.details.health as Array<{ host: string; up: boolean; response?: { status: string } }>;
    expect(health.map((h) => [h.host, h.up])).toEqual([["live", true], ["dead", false]]);
    expect(health[0].response?.status).toBe("ok");
  });

  it("gpu_status lists each host's queue; gpu_info describes a host", async () => {
    const a = await host(gpuService("a", 3));
    const { tool } = registerWith({ hosts: [{ name: "a", url: a.url }] });
    const status = await tool("gpu_status").execute("1", {});
    expect(status.content[0].text).toContain("a: 3 running");
    const info = await tool("gpu_info").execute("2", {});
    expect(info.content[0].text).toContain("GPU of a");
    expect(info.details).toMatchObject({ host: "a", info: { device: "cuda" } });
  });

  it("gpu_embed summarises vectors in the text and returns them whole in details", async () => {
    const a = await host(gpuService("a"));
    const { tool } = registerWith({ hosts: [{ name: "a", url: a.url }], models: { embed: "my-model" } });
    const result = await tool("gpu_embed").execute("1", { texts: ["a", "b", "c"] });
    expect(result.content[0].text).toContain("Embedded 3 text(s)");
    expect(result.content[0].text).not.toContain("[");
    expect((result.details.embeddings as { embeddings: number[][] }).embeddings).toEqual([[0, 1], [1, 1], [2, 1]]);
    expect(a.received.find((r) => r.path === "/embed")?.body).toEqual({ texts: ["a", "b", "c"], model: "my-model" });
  });

  it("gpu_embed and gpu_bertscore pass an optional precision through, and send none when not given", async () => {
    const a = await host(gpuService("a"));
    const { tool } = registerWith({ hosts: [{ name: "a", url: a.url }] });
    await tool("gpu_embed").execute("1", { texts: ["a"], precision: "fp16" });
    await tool("gpu_bertscore").execute("2", { candidates: ["x"], references: ["r"], precision: "fp16" });
    await tool("gpu_embed").execute("3", { texts: ["b"] });
    const embeds = a.received.filter((r) => r.path === "/embed").map((r) => r.body as Record<string, unknown>);
    expect(embeds[0]).toMatchObject({ texts: ["a"], precision: "fp16" });
    expect(embeds[1]).not.toHaveProperty("precision");
    expect(a.received.find((r) => r.path === "/bertscore")?.body).toMatchObject({ candidates: ["x"], references: ["r"], precision: "fp16" });
    const schema = tool("gpu_embed").parameters as { properties: Record<string, { enum?: string[] }> };
    expect(schema.properties.precision.enum).toEqual(["fp32", "fp16"]);
  });

  it("gpu_bertscore forwards every option and reports means", async () => {
    const a = await host(gpuService("a"));
    const { tool } = registerWith({ hosts: [{ name: "a", url: a.url }] });
    const result = await tool("gpu_bertscore").execute("1", {
      candidates: ["x", "y"],
      references: [["r1", "r2"], ["r3"]],
      model: "roberta-large",
      lang: "en",
      num_layers: 17,
      idf: true,
      rescale_with_baseline: true,
    });
    expect(result.content[0].text).toContain("F1 0.8500");
    expect(a.received.find((r) => r.path === "/bertscore")?.body).toEqual({
      candidates: ["x", "y"],
      references: [["r1", "r2"], ["r3"]],
      model_type: "roberta-large",
      lang: "en",
      num_layers: 17,
      idf: true,
      rescale_with_baseline: true,
    });
  });

  it("by default sends what the front takes by default as one request: 2,048 texts, and texts of any length", async () => {
    const a = await host(gpuService("a"));
    const { tool } = registerWith({ hosts: [{ name: "a", url: a.url }] });
    const many = Array.from({ length: 2048 }, (_, i) => `text ${i}`);
    many[7] = "long ".repeat(20_000);
    const result = await tool("gpu_embed").execute("1", { texts: many });
    expect(result.isError).toBeUndefined();
    expect((result.details.embeddings as { embeddings: number[][] }).embeddings).toHaveLength(2048);
    const sent = a.received.filter((r) => r.path === "/embed");
    expect(sent).toHaveLength(1);
    expect((sent[0].body as { texts: string[] }).texts).toEqual(many);
  });

  it("checks arguments before calling a host", async () => {
    const a = await host(gpuService("a"));
    const { tool } = registerWith({ hosts: [{ name: "a", url: a.url }], limits: { maxBatchSize: 2, maxTextLength: 5 } });
    expect((await tool("gpu_embed").execute("1", { texts: [] })).content[0].text).toContain("non-empty array");
    expect((await tool("gpu_embed").execute("2", { texts: ["a", "b", "c"] })).content[0].text).toContain("at most 2 per call (limits.maxBatchSize)");
    expect((await tool("gpu_embed").execute("4", { texts: ["a", "longer"] })).content[0].text).toContain("'texts[1]' is longer than 5 characters (limits.maxTextLength)");
    expect((await tool("gpu_bertscore").execute("3", { candidates: ["a", "b"], references: ["x"] })).content[0].text).toContain("pair up");
    expect(a.received).toHaveLength(0);
  });
});
