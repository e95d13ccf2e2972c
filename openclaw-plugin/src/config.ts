// Plugin configuration, as OpenClaw hands it over in api.pluginConfig (plugins.entries.<id>.config).
// Reading never throws: a missing or unusable config becomes a "not configured" reason that the tools report.

export type LoadBalancing = "round-robin" | "least-busy";

export interface HostConfig {
  name: string;
  url: string;
  apiKey?: string;
}

export interface GpuConfig {
  hosts: HostConfig[];
  loadBalancing: LoadBalancing;
  healthCheckIntervalSeconds: number;
  timeoutMs: number;
  models: { embed?: string; bertscore?: string };
  limits: Limits;
}

/**
 * What one tool call may carry. The hosts set their own limits (the front: GPU_MAX_BATCH_SIZE inputs and
 * GPU_MAX_BODY_BYTES per request); a call over a host's limit is split across the pool rather than refused here.
 */
export interface Limits {
  /** Texts per tool call (per array for gpu_bertscore): a bound on the call, not on one request. */
  maxBatchSize: number;
  /** Characters per text; undefined: no cap here (the hosts truncate to the model, or refuse). */
  maxTextLength?: number;
  /** Bytes of one request body: a larger call is split up front, and a text that alone makes a larger body is refused. */
  maxRequestBytes: number;
}

export type ConfigResult = { ok: true; config: GpuConfig } | { ok: false; reason: string };

export const DEFAULTS = {
  loadBalancing: "round-robin" as LoadBalancing,
  healthCheckIntervalSeconds: 30,
  timeoutSeconds: 45,
  // Far above what one host takes (the front: 2,048 inputs per request by default): the plugin splits calls.
  maxBatchSize: 100_000,
  // The front's default body limit (GPU_MAX_BODY_BYTES, 8 MiB).
  maxRequestBytes: 8 * 1024 * 1024,
};

type Raw = Record<string, unknown>;

function isObject(value: unknown): value is Raw {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * An API key: a string, or a SecretRef the host has not resolved. An env SecretRef ({source: "env", id}) is read
 * here; any other unresolved reference leaves the key unset rather than sending "[object Object]".
 */
export function resolveSecret(value: unknown, env: Record<string, string | undefined>): string | undefined {
  if (typeof value === "string") {
    return value.trim() === "" ? undefined : value;
  }
  if (isObject(value) && value.source === "env" && typeof value.id === "string") {
    const resolved = env[value.id];
    return resolved && resolved.trim() !== "" ? resolved : undefined;
  }
  return undefined;
}

function normalizeUrl(url: string): string | undefined {
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      return undefined;
    }
    return parsed.toString().replace(/\/+$/, "");
  } catch {
    return undefined;
  }
}

function positive(value: unknown, fallback: number): number {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : fallback;
}

function optionalPositive(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? Math.floor(value) : undefined;
}

/** Reads the plugin config: hosts[] (v0.2), or the legacy serviceUrl / url (v0.1); apiKey is the per-host fallback. */
export function readConfig(pluginConfig: unknown, env: Record<string, string | undefined> = {}): ConfigResult {
  const raw: Raw = isObject(pluginConfig) ? pluginConfig : {};
  const fallbackKey = resolveSecret(raw.apiKey, env);
  const hosts: HostConfig[] = [];
  const problems: string[] = [];

  if (Array.isArray(raw.hosts)) {
    raw.hosts.forEach((entry, i) => {
      if (!isObject(entry) || typeof entry.url !== "string") {
        problems.push(`hosts[${i}] has no url`);
        return;
      }
      const url = normalizeUrl(entry.url);
      if (!url) {
        problems.push(`hosts[${i}].url '${entry.url}' is not an http(s) URL`);
        return;
      }
      const name = typeof entry.name === "string" && entry.name.trim() !== "" ? entry.name.trim() : new URL(url).host;
      hosts.push({ name, url, apiKey: resolveSecret(entry.apiKey, env) ?? fallbackKey });
    });
  }

  const legacy = typeof raw.serviceUrl === "string" ? raw.serviceUrl : typeof raw.url === "string" ? raw.url : undefined;
  if (hosts.length === 0 && legacy !== undefined) {
    const url = normalizeUrl(legacy);
    if (url) {
      hosts.push({ name: new URL(url).host, url, apiKey: fallbackKey });
    } else {
      problems.push(`serviceUrl '${legacy}' is not an http(s) URL`);
    }
  }

  if (hosts.length === 0) {
    const detail = problems.length > 0 ? ` (${problems.join("; ")})` : "";
    return {
      ok: false,
      reason: `no GPU host is configured${detail}. Set plugins.entries.<id>.config.hosts to [{"name": "gpu-1", "url": "http://host:8765", "apiKey": "..."}].`,
    };
  }

  const models = isObject(raw.models) ? raw.models : {};
  const limits = isObject(raw.limits) ? raw.limits : {};
  return {
    ok: true,
    config: {
      hosts,
      loadBalancing: raw.loadBalancing === "least-busy" ? "least-busy" : DEFAULTS.loadBalancing,
      healthCheckIntervalSeconds:
        typeof raw.healthCheckIntervalSeconds === "number" && raw.healthCheckIntervalSeconds >= 0
          ? raw.healthCheckIntervalSeconds
          : DEFAULTS.healthCheckIntervalSeconds,
      timeoutMs: positive(raw.timeout, DEFAULTS.timeoutSeconds) * 1000,
      models: {
        embed: typeof models.embed === "string" ? models.embed : undefined,
        bertscore: typeof models.bertscore === "string" ? models.bertscore : undefined,
      },
      limits: {
        maxBatchSize: Math.floor(positive(limits.maxBatchSize, DEFAULTS.maxBatchSize)),
        maxTextLength: optionalPositive(limits.maxTextLength),
        maxRequestBytes: Math.floor(positive(limits.maxRequestBytes, DEFAULTS.maxRequestBytes)),
      },
    },
  };
}
