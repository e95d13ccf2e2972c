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

  it("uses the seed's defaults", () => {
    const result = readConfig({ serviceUrl: "http://gpu:8765" });
    expect(result.ok && result.config).toMatchObject({
      loadBalancing: "round-robin",
      healthCheckIntervalSeconds: 30,
      timeoutMs: 45_000,
      limits: { maxBatchSize: 100, maxTextLength: 10_000 },
    });
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
