import { describe, expect, it } from "vitest";
import { readConfig, resolveSecret } from "../src/config.js";

describe("readConfig", () => {
  it("reads hosts[] with per-host keys and the top-level fallback key", () => {
    const result = readConfig({
      hosts: [
        { name: "a", url: "http://a:8765/", apiKey: "ka" },
        { url: "http://b:8765" },
      ],
      apiKey: "fallback",
      loadBalancing: "least-busy",
      timeout: 10,
      models: { embed: "e", bertscore: "b" },
    });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.config.hosts).toEqual([
      { name: "a", url: "http://a:8765", apiKey: "ka" },
      { name: "b:8765", url: "http://b:8765", apiKey: "fallback" },
    ]);
    expect(result.config.loadBalancing).toBe("least-busy");
    expect(result.config.timeoutMs).toBe(10_000);
    expect(result.config.models).toEqual({ embed: "e", bertscore: "b" });
  });

  it("accepts the legacy serviceUrl and url", () => {
    for (const key of ["serviceUrl", "url"]) {
      const result = readConfig({ [key]: "http://gpu:8765", apiKey: "k" });
      expect(result.ok && result.config.hosts).toEqual([{ name: "gpu:8765", url: "http://gpu:8765", apiKey: "k" }]);
    }
  });

  it("uses the seed's defaults, and limits that take at least what the front takes by default", () => {
    const result = readConfig({ serviceUrl: "http://gpu:8765" });
    expect(result.ok && result.config).toMatchObject({
      loadBalancing: "round-robin",
      healthCheckIntervalSeconds: 30,
      timeoutMs: 45_000,
    });
    if (!result.ok) return;
    // The front's defaults: 2,048 inputs per request, any text length while truncating, 8 MiB of body.
    expect(result.config.limits.maxBatchSize).toBeGreaterThanOrEqual(2048);
    expect(result.config.limits.maxTextLength).toBeUndefined();
    expect(result.config.limits.maxRequestBytes).toBe(8 * 1024 * 1024);
  });

  it("reads the limits, and ignores values that are not positive numbers", () => {
    const set = readConfig({ serviceUrl: "http://gpu:8765", limits: { maxBatchSize: 50, maxTextLength: 2000, maxRequestBytes: 65536 } });
    expect(set.ok && set.config.limits).toEqual({ maxBatchSize: 50, maxTextLength: 2000, maxRequestBytes: 65536 });
    const bad = readConfig({ serviceUrl: "http://gpu:8765", limits: { maxBatchSize: 0, maxTextLength: -1, maxRequestBytes: "big" } });
    expect(bad.ok && bad.config.limits).toEqual({ maxBatchSize: 100_000, maxTextLength: undefined, maxRequestBytes: 8 * 1024 * 1024 });
  });

  it("explains what is missing", () => {
    const result = readConfig({ hosts: [{ url: "not a url" }] });
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toContain("hosts[0].url 'not a url' is not an http(s) URL");
  });

  it("resolves env SecretRefs and never sends an unresolved object as a key", () => {
    expect(resolveSecret({ source: "env", provider: "default", id: "GPU_KEY" }, { GPU_KEY: "s3cret" })).toBe("s3cret");
    expect(resolveSecret({ source: "file", provider: "x", id: "/k" }, {})).toBeUndefined();
    expect(resolveSecret("plain", {})).toBe("plain");
    const result = readConfig({ hosts: [{ url: "http://a", apiKey: { source: "exec", id: "x" } }] }, {});
    expect(result.ok && result.config.hosts[0].apiKey).toBeUndefined();
  });
});
