// A pool of GPU hosts speaking the OrleansGpu / openclaw-gpu-bridge REST API: picks a host (round-robin, or
// least-busy from each host's /status), fails over on network errors, timeouts and 5xx, skips hosts that the
// health poll found down, and honours 503 + Retry-After. Configuration comes from the plugin config only.

import type { GpuConfig, HostConfig } from "./config.js";

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** An answer from a host that says the request itself is wrong (4xx): retrying elsewhere would not help. */
export class ServiceError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly host: string,
  ) {
    super(message);
    this.name = "ServiceError";
  }
}

/**
 * A host refused the request for its size (413, or a 400 that says it holds too many inputs or is too large): a
 * smaller request may pass, so the caller can split it. `maxItems` is the limit the host named, when it named one.
 */
export class TooLargeError extends ServiceError {
  constructor(
    message: string,
    status: number,
    host: string,
    readonly maxItems?: number,
  ) {
    super(message, status, host);
    this.name = "TooLargeError";
  }
}

/** No host could serve the request. */
export class UnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnavailableError";
  }
}

export interface HostState {
  host: HostConfig;
  healthy: boolean;
  lastError?: string;
  /** in_flight + waiting from the host's last /status, for least-busy. */
  load?: number;
  checkedAt?: number;
  /** Requests this plugin has sent to the host and not yet had answered: parts of a split call start together. */
  inFlight: number;
  refreshing?: Promise<void>;
}

export interface Answer<T> {
  data: T;
  host: string;
}

const HEALTH_TIMEOUT_MS = 5_000;
const STATUS_TIMEOUT_MS = 2_000;
const MAX_RETRY_AFTER_S = 30;
const MAX_BUSY_ROUNDS = 3;
const MAX_ERROR_TEXT = 300;

export class HostPool {
  private readonly states: HostState[];
  private next = 0;

  constructor(
    private readonly config: GpuConfig,
    private readonly fetchImpl: FetchLike = (input, init) => fetch(input, init),
    private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void> = abortableSleep,
  ) {
    this.states = config.hosts.map((host) => ({ host, healthy: true, inFlight: 0 }));
  }

  get hosts(): readonly HostState[] {
    return this.states;
  }

  /** Polls every host's /health (and /status for least-busy); the service calls this on its interval. */
  async checkAll(signal?: AbortSignal): Promise<void> {
    await Promise.all(this.states.map((state) => this.check(state, signal)));
  }

  private async check(state: HostState, signal?: AbortSignal): Promise<void> {
    try {
      await this.fetchJson(state.host, "/health", { signal, timeoutMs: HEALTH_TIMEOUT_MS });
      state.healthy = true;
      state.lastError = undefined;
      if (this.config.loadBalancing === "least-busy") {
        state.load = await this.loadOf(state.host, signal);
      }
    } catch (error) {
      state.healthy = false;
      state.lastError = describe(error);
    }
    state.checkedAt = Date.now();
  }

  private async loadOf(host: HostConfig, signal?: AbortSignal): Promise<number | undefined> {
    try {
      const status = (await this.fetchJson(host, "/status", { signal, timeoutMs: STATUS_TIMEOUT_MS })) as {
        queue?: { in_flight?: number; waiting_estimate?: number };
      };
      return (status.queue?.in_flight ?? 0) + (status.queue?.waiting_estimate ?? 0);
    } catch {
      return undefined;
    }
  }

  /** GET or POST on every host at once (health, status): one answer per host, failures included. */
  async each<T>(path: string, signal?: AbortSignal): Promise<Array<{ host: HostConfig; data?: T; error?: string }>> {
    return Promise.all(
      this.states.map(async (state) => {
        try {
          const data = (await this.fetchJson(state.host, path, { signal, timeoutMs: HEALTH_TIMEOUT_MS })) as T;
          state.healthy = true;
          return { host: state.host, data };
        } catch (error) {
          if (error instanceof ServiceError) {
            return { host: state.host, error: error.message };
          }
          state.healthy = false;
          state.lastError = describe(error);
          return { host: state.host, error: state.lastError };
        }
      }),
    );
  }

  /**
   * Sends a request to one host, failing over to the others. A 4xx is the caller's mistake and is thrown at once;
   * network errors, timeouts and 5xx move on to the next host; 503 from every host waits Retry-After and retries.
   */
  async request<T>(path: string, options: { method?: string; body?: unknown; signal?: AbortSignal; timeoutMs?: number } = {}): Promise<Answer<T>> {
    const failures: string[] = [];
    for (let round = 0; round < MAX_BUSY_ROUNDS; round++) {
      let retryAfter: number | undefined;
      for (const state of await this.order(options.signal)) {
        options.signal?.throwIfAborted();
        state.inFlight++;
        try {
          const data = (await this.fetchJson(state.host, path, { ...options, timeoutMs: options.timeoutMs ?? this.config.timeoutMs })) as T;
          state.healthy = true;
          return { data, host: state.host.name };
        } catch (error) {
          if (error instanceof ServiceError) {
            throw error;
          }
          if (error instanceof BusyError) {
            retryAfter = Math.min(retryAfter ?? Infinity, error.retryAfterSeconds);
            failures.push(`${state.host.name}: busy`);
            continue;
          }
          if (options.signal?.aborted) {
            throw options.signal.reason ?? error;
          }
          state.healthy = false;
          state.lastError = describe(error);
          failures.push(`${state.host.name}: ${state.lastError}`);
        } finally {
          state.inFlight--;
        }
      }
      if (retryAfter === undefined) {
        break;
      }
      await this.sleep(Math.min(retryAfter, MAX_RETRY_AFTER_S) * 1000, options.signal);
    }
    throw new UnavailableError(`no GPU host could serve ${path} (${failures.join("; ")})`);
  }

  /**
   * Healthy hosts first, in load-balancing order; hosts marked down last, as a last resort. Least-busy adds the
   * requests this plugin has in flight to each host's last reported load, so that the parts of a split call, sent
   * together before any /status could show them, spread over the hosts instead of all going to the idlest one.
   */
  private async order(signal?: AbortSignal): Promise<HostState[]> {
    const healthy = this.states.filter((s) => s.healthy);
    const down = this.states.filter((s) => !s.healthy);
    if (this.config.loadBalancing === "least-busy") {
      const stale = healthy.filter((s) => s.load === undefined || !s.checkedAt || Date.now() - s.checkedAt > 5_000);
      await Promise.all(stale.map((s) => (s.refreshing ??= this.refreshLoad(s, signal))));
      const busy = (s: HostState) => (s.load === undefined ? Number.MAX_SAFE_INTEGER : s.load + s.inFlight);
      healthy.sort((a, b) => busy(a) - busy(b));
      return [...healthy, ...down];
    }
    const start = this.next++ % this.states.length;
    const rotated = [...this.states.slice(start), ...this.states.slice(0, start)];
    return [...rotated.filter((s) => s.healthy), ...rotated.filter((s) => !s.healthy)];
  }

  private async refreshLoad(state: HostState, signal?: AbortSignal): Promise<void> {
    try {
      state.load = await this.loadOf(state.host, signal);
      state.checkedAt = Date.now();
    } finally {
      state.refreshing = undefined;
    }
  }

  private async fetchJson(
    host: HostConfig,
    path: string,
    options: { method?: string; body?: unknown; signal?: AbortSignal; timeoutMs: number },
  ): Promise<unknown> {
    const timeout = AbortSignal.timeout(options.timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    const headers: Record<string, string> = { Accept: "application/json" };
    if (host.apiKey) {
      headers["X-API-Key"] = host.apiKey;
    }
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
    }

    let response: Response;
    try {
      response = await this.fetchImpl(`${host.url}${path}`, {
        method: options.method ?? (options.body === undefined ? "GET" : "POST"),
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal,
      });
    } catch (error) {
      if (timeout.aborted && !options.signal?.aborted) {
        throw new Error(`timed out after ${Math.round(options.timeoutMs / 1000)} s`);
      }
      throw error;
    }

    const text = await response.text();
    if (response.status === 503) {
      const seconds = Number(response.headers.get("retry-after"));
      throw new BusyError(Number.isFinite(seconds) && seconds > 0 ? seconds : 5);
    }
    if (response.status >= 400 && response.status < 500) {
      const problem = problemOf(text);
      const message = `${host.name} answered ${response.status}: ${problem.message}`;
      const size = sizeRefusal(response.status, problem);
      throw size ? new TooLargeError(message, response.status, host.name, size.maxItems) : new ServiceError(message, response.status, host.name);
    }
    if (!response.ok) {
      throw new Error(`HTTP ${response.status}: ${problemOf(text).message}`);
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new Error(`answered with something that is not JSON: ${problemOf(text).message}`);
    }
  }
}

class BusyError extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super(`busy (retry after ${retryAfterSeconds} s)`);
  }
}

interface Problem {
  message: string;
  code?: string;
}

/** The message and code of a JSON error body (problem details, OpenAI, FastAPI), the message bounded in length. */
function problemOf(body: string): Problem {
  let message = body;
  let code: string | undefined;
  try {
    const parsed = JSON.parse(body) as { detail?: unknown; error?: unknown; message?: unknown; code?: unknown };
    const error = typeof parsed.error === "object" && parsed.error !== null ? (parsed.error as { message?: unknown; code?: unknown }) : undefined;
    // FastAPI's validation errors: detail is a list of {msg, ...}.
    const validation = Array.isArray(parsed.detail)
      ? parsed.detail.map((d) => (typeof d === "object" && d !== null ? (d as { msg?: unknown }).msg : undefined)).filter((m) => typeof m === "string")
      : [];
    const candidate =
      typeof parsed.detail === "string"
        ? parsed.detail
        : validation.length > 0
          ? validation.join("; ")
          : typeof error?.message === "string"
            ? error.message
            : typeof parsed.error === "string"
              ? parsed.error
              : typeof parsed.message === "string"
                ? parsed.message
                : undefined;
    if (candidate) {
      message = candidate;
    }
    code = typeof parsed.code === "string" ? parsed.code : typeof error?.code === "string" ? error.code : undefined;
  } catch {
    // not JSON: keep the text, without the markup of a proxy's HTML error page
    message = message.replace(/<[^>]*>/g, " ");
  }
  message = message.replace(/\s+/g, " ").trim();
  return { message: message.length > MAX_ERROR_TEXT ? `${message.slice(0, MAX_ERROR_TEXT)}…` : message || "(empty body)", code };
}

// Codes and wordings by which hosts refuse a request for its size rather than its content: OrleansGpu's front
// (body_too_large; "'texts' has 150 items; at most 100 are allowed per request (GPU_MAX_BATCH_SIZE)"), FastAPI /
// pydantic ("List should have at most 100 items"), TEI ("batch size 64 > maximum allowed batch size 32").
// A text too long for the model (input_too_long) is not one: no split makes it shorter.
const SIZE_CODES = new Set(["body_too_large", "too_many_inputs", "too_many_items", "batch_too_large", "payload_too_large", "request_too_large"]);
const LIMIT = /at most ([\d,]+) (?:items|inputs|texts|are allowed per request)|maximum allowed batch size (?:is )?([\d,]+)/i;
const SIZE_WORDS = /too many (?:items|inputs|texts)|(?:body|request|payload|batch) (?:is )?too large|GPU_MAX_BATCH_SIZE|GPU_MAX_BODY_BYTES/i;

function sizeRefusal(status: number, problem: Problem): { maxItems?: number } | undefined {
  const named = status === 413 || ((status === 400 || status === 422) && ((problem.code !== undefined && SIZE_CODES.has(problem.code)) || SIZE_WORDS.test(problem.message) || LIMIT.test(problem.message)));
  if (!named) {
    return undefined;
  }
  const limit = LIMIT.exec(problem.message);
  const maxItems = limit ? Number((limit[1] ?? limit[2]).replace(/,/g, "")) : NaN;
  return { maxItems: Number.isInteger(maxItems) && maxItems > 0 ? maxItems : undefined };
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    return cause?.code ? `${error.message} (${cause.code})` : error.message;
  }
  return String(error);
}

function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
