// The plugin against the real Api.Front, with a dead host first in the pool: failover to the live host, and the
// numbers the front returns are the oracles' numbers. The front takes at most 32 inputs per request here, so that
// larger calls are refused by the real front and split by the plugin.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { deadUrl } from "./fakeHosts.js";
import { frontDll, startFront, type RunningFront } from "./front.js";
import { registerWith } from "./mockApi.js";

const oracles = resolve(import.meta.dirname, "..", "..", "..", "shared", "oracles");
const FRONT_MAX_INPUTS = 32;

describe.skipIf(!frontDll)(`end to end against the real Api.Front${frontDll ? "" : " (skipped: Api.Front is not built; run dotnet build first)"}`, () => {
  let front: RunningFront;
  let tool: ReturnType<typeof registerWith>["tool"];

  beforeAll(async () => {
    front = await startFront("e2e-key", { GPU_MAX_BATCH_SIZE: String(FRONT_MAX_INPUTS) });
    ({ tool } = registerWith({
      hosts: [
        { name: "dead", url: await deadUrl() },
        { name: "live", url: front.url },
      ],
      apiKey: "e2e-key",
      timeout: 120,
    }));
  });

  afterAll(async () => {
    await front?.stop();
  });

  it("gpu_embed returns sentence-transformers' vectors through the live host", async () => {
    const oracle = JSON.parse(readFileSync(resolve(oracles, "embed-public.json"), "utf8"));
    const texts: string[] = oracle.texts.slice(0, 5);
    const result = await tool("gpu_embed").execute("e1", { texts });
    expect(result.isError).toBeUndefined();
    expect(result.details.host).toBe("live");
    const embeddings = (result.details.embeddings as { embeddings: number[][]; dimensions: number }).embeddings;
    expect(embeddings).toHaveLength(5);
    let worst = 0;
    embeddings.forEach((row, i) => row.forEach((v, d) => (worst = Math.max(worst, Math.abs(v - oracle.embeddings[i][d])))));
    expect(worst).toBeLessThanOrEqual(1e-5);
  });

  it("gpu_bertscore returns bert_score's numbers", async () => {
    const oracle = JSON.parse(readFileSync(resolve(oracles, "bertscore-public.json"), "utf8"));
    const n = 6;
    const result = await tool("gpu_bertscore").execute("b1", {
      candidates: oracle.candidates.slice(0, n),
      references: oracle.references.slice(0, n),
      model_type: "all-MiniLM-L6-v2",
    });
    expect(result.isError).toBeUndefined();
    const scores = result.details.bertscore as { f1: number[]; precision: number[] };
    for (let i = 0; i < n; i++) {
      expect(Math.abs(scores.f1[i] - oracle.runs.L6_noidf.F[i])).toBeLessThanOrEqual(1e-5);
      expect(Math.abs(scores.precision[i] - oracle.runs.L6_noidf.P[i])).toBeLessThanOrEqual(1e-5);
    }
  });

  it("gpu_embed of every oracle text, refused whole by the front, is split and returns sentence-transformers' vectors in order", async () => {
    const oracle = JSON.parse(readFileSync(resolve(oracles, "embed-public.json"), "utf8"));
    const texts: string[] = oracle.texts;
    expect(texts.length).toBeGreaterThan(FRONT_MAX_INPUTS * 4);
    const result = await tool("gpu_embed").execute("e2", { texts });
    expect(result.isError).toBeUndefined();
    expect(result.content[0].text).toMatch(/Split into \d+ requests over live, because live answered 400: .*at most 32/);
    const parts = result.details.parts as Array<{ host: string; from: number; to: number }>;
    expect(parts.length).toBeGreaterThanOrEqual(Math.ceil(texts.length / FRONT_MAX_INPUTS));
    const embeddings = (result.details.embeddings as { embeddings: number[][] }).embeddings;
    expect(embeddings).toHaveLength(texts.length);
    let worst = 0;
    embeddings.forEach((row, i) => row.forEach((v, d) => (worst = Math.max(worst, Math.abs(v - oracle.embeddings[i][d])))));
    expect(worst).toBeLessThanOrEqual(1e-5);
  }, 180_000); // 327 texts on a CPU shared with other builds

  it("gpu_bertscore with two references per candidate, refused whole, is split by pairs and returns bert_score's scores", async () => {
    const oracle = JSON.parse(readFileSync(resolve(oracles, "bertscore-public.json"), "utf8"));
    const multi = oracle.multi as { candidates: string[]; references_multi: string[][]; num_layers: number; P: number[]; R: number[]; F: number[] };
    const result = await tool("gpu_bertscore").execute("b2", {
      candidates: multi.candidates,
      references: multi.references_multi,
      model_type: "all-MiniLM-L6-v2",
      num_layers: multi.num_layers,
    });
    expect(result.isError).toBeUndefined();
    expect((result.details.parts as unknown[]).length).toBeGreaterThan(1);
    const scores = result.details.bertscore as { f1: number[]; precision: number[]; recall: number[] };
    expect(scores.f1).toHaveLength(multi.candidates.length);
    for (let i = 0; i < multi.candidates.length; i++) {
      expect(Math.abs(scores.precision[i] - multi.P[i])).toBeLessThanOrEqual(1e-5);
      expect(Math.abs(scores.recall[i] - multi.R[i])).toBeLessThanOrEqual(1e-5);
      expect(Math.abs(scores.f1[i] - multi.F[i])).toBeLessThanOrEqual(1e-5);
    }
  }, 120_000);

  it("gpu_bertscore with idf over the front's limit is refused with the reason, not split", async () => {
    const oracle = JSON.parse(readFileSync(resolve(oracles, "bertscore-public.json"), "utf8"));
    const result = await tool("gpu_bertscore").execute("b3", {
      candidates: oracle.candidates.slice(0, 40),
      references: oracle.references.slice(0, 40),
      model_type: "all-MiniLM-L6-v2",
      idf: true,
    });
    expect(result.isError).toBe(true);
    expect(result.content[0].text).toContain("at most 32");
    expect(result.content[0].text).toContain("cannot be split: with idf");
  });

  it("gpu_health, gpu_info and gpu_status see the live host and report the dead one", async () => {
    const health = await tool("gpu_health").execute("h1", {});
    expect(health.content[0].text).toContain("1/2 GPU host(s) up");
    const info = await tool("gpu_info").execute("i1", {});
    expect(info.isError).toBeUndefined();
    expect(info.content[0].text).toContain("all-MiniLM-L6-v2");
    const status = await tool("gpu_status").execute("s1", {});
    expect(status.content[0].text).toMatch(/live: \d+ running/);
    expect(status.content[0].text).toContain("dead: unreachable");
  });

  it("a wrong key is reported as the service's refusal", async () => {
    const { tool: wrong } = registerWith({ hosts: [{ name: "live", url: front.url, apiKey: "nope" }] });
    const result = await wrong("gpu_info").execute("w1", {});
    expect(result.isError).toBe(true);
    expect(result.content[0].text).toContain("401");
  });
});
