// The five agent tools. Each answers with a short text for the model and the full data in `details`, under its
// own key (OpenClaw reserves status/ok/success/error/timedOut/exitCode at the top of details).

import type { ConfigResult, GpuConfig } from "./config.js";
import { HostPool, ServiceError } from "./client.js";
import { scatterGather, type Gathered, type SplittableCall } from "./split.js";

export interface ToolResult {
  content: Array<{ type: "text"; text: string }>;
  details: Record<string, unknown>;
  isError?: boolean;
}

export interface Tool {
  name: string;
  label: string;
  description: string;
  parameters: Record<string, unknown>;
  execute(toolCallId: string, params: Record<string, unknown>, signal?: AbortSignal): Promise<ToolResult>;
}

export const TOOL_NAMES = ["gpu_health", "gpu_info", "gpu_status", "gpu_bertscore", "gpu_embed"] as const;

const noParameters = { type: "object", properties: {}, additionalProperties: false };

const stringArray = (description: string) => ({ type: "array", items: { type: "string" }, minItems: 1, description });

function text(message: string, details: Record<string, unknown>, isError = false): ToolResult {
  return { content: [{ type: "text", text: message }], details, ...(isError ? { isError: true } : {}) };
}

function failure(error: unknown): ToolResult {
  const message = error instanceof Error ? error.message : String(error);
  const kind = error instanceof ServiceError ? "rejected" : error instanceof Error && error.name === "AbortError" ? "cancelled" : "unavailable";
  return text(`GPU error: ${message}`, { failure: { kind, message } }, true);
}

/** Checks tool arguments the way the service will, so that the model gets a precise message without a round trip. */
function strings(params: Record<string, unknown>, name: string, config: GpuConfig): string[] {
  const value = params[name];
  if (!Array.isArray(value) || value.length === 0 || value.some((v) => typeof v !== "string")) {
    throw new ServiceError(`'${name}' must be a non-empty array of strings`, 400, "plugin");
  }
  const { maxBatchSize, maxTextLength } = config.limits;
  if (value.length > maxBatchSize) {
    throw new ServiceError(`'${name}' has ${value.length} items; at most ${maxBatchSize} per call (limits.maxBatchSize)`, 400, "plugin");
  }
  const long = maxTextLength === undefined ? -1 : value.findIndex((v: string) => v.length > maxTextLength);
  if (long >= 0) {
    throw new ServiceError(`'${name}[${long}]' is longer than ${maxTextLength} characters (limits.maxTextLength)`, 400, "plugin");
  }
  return value as string[];
}

function references(params: Record<string, unknown>, config: GpuConfig): string[] | string[][] {
  const value = params.references;
  if (Array.isArray(value) && value.length > 0 && value.every((v) => Array.isArray(v))) {
    return value.map((group, i) => strings({ [`references[${i}]`]: group }, `references[${i}]`, config));
  }
  return strings(params, "references", config);
}

function mean(values: Array<number | null>): number {
  const finite = values.filter((v): v is number => typeof v === "number");
  return finite.length === 0 ? NaN : finite.reduce((a, b) => a + b, 0) / finite.length;
}

type EmbedAnswer = { embeddings: number[][]; model: string; dimensions: number; compute_precision?: string };
type ScoreAnswer = {
  precision: Array<number | null>;
  recall: Array<number | null>;
  f1: Array<number | null>;
  model?: string;
  hash?: string;
  compute_precision?: string;
};

/** The service's precisions: fp32 (its default, the numbers the peers give) and fp16 (faster on a GPU, within 1e-3). */
const precisionParameter = {
  type: "string",
  enum: ["fp32", "fp16"],
  description:
    "fp32 or fp16 (faster on a GPU host, within about 1e-3 of fp32). Default: the service's setting for the model (fp32 unless its operator set GPU_PRECISION). A CPU host answers in fp32.",
};

/** The precision of gathered parts: theirs when they agree, else each part's in order (hosts may differ), as the front reports a split request. */
function computePrecision(parts: Array<{ compute_precision?: string }>): string | undefined {
  const all = parts.map((p) => p.compute_precision);
  return all.every((p) => p === all[0]) ? all[0] : all.join(",");
}

/** " (computed in fp16)" when the service says it computed in fp16, so the agent knows the numbers are not the fp32 ones. */
function precisionNote(precision: string | undefined): string {
  return precision && precision !== "fp32" ? ` (computed in ${precision})` : "";
}

/** Bytes a value adds to a JSON body, with its separating comma. */
function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value)) + 1;
}

/** Gathered parts must come from one model: a pool whose hosts serve different models cannot be split over. */
function sameModel<T>(parts: T[], model: (part: T) => string): void {
  const models = [...new Set(parts.map(model))];
  if (models.length > 1) {
    throw new Error(`the parts of the call were answered by different models (${models.join(", ")}); give every host the same model`);
  }
}

// Embeddings are per text: any split gives the vectors of the unsplit call.
function embedCall(texts: string[], model: string | undefined, precision?: string): SplittableCall<EmbedAnswer> {
  const bytes = texts.map(jsonBytes);
  const body = (from: number, to: number) => ({
    texts: texts.slice(from, to),
    ...(model ? { model } : {}),
    ...(precision ? { precision } : {}),
  });
  return {
    path: "/embed",
    items: texts.length,
    weight: () => 1,
    bytes: (i) => bytes[i],
    overheadBytes: jsonBytes(body(0, 0)),
    body,
    label: (i) => `texts[${i}]`,
    count: (answer) => answer.embeddings?.length ?? 0,
    merge: (parts) => {
      sameModel(parts, (p) => `${p.model} (${p.dimensions} dimensions)`);
      return { ...parts[0], embeddings: parts.flatMap((p) => p.embeddings), compute_precision: computePrecision(parts) };
    },
  };
}

// Without idf a pair's scores depend on that pair alone, so parts keep each candidate with its references and
// give the unsplit call's scores. With idf, bert_score weighs tokens by their document frequency over all the
// references of the call: parts would each get their own weights, so an idf call goes whole or not at all.
const IDF_WHOLE =
  "with idf, bert_score weighs tokens by their frequency over all the references of the call, so parts scored apart would not give the unsplit call's scores; send fewer pairs per call, or score without idf";

function bertscoreCall(candidates: string[], references: string[] | string[][], options: Record<string, unknown>): SplittableCall<ScoreAnswer> {
  const bytes = candidates.map((c, i) => jsonBytes(c) + jsonBytes(references[i]));
  const body = (from: number, to: number) => ({ candidates: candidates.slice(from, to), references: references.slice(from, to), ...options });
  return {
    path: "/bertscore",
    items: candidates.length,
    weight: (i) => 1 + (Array.isArray(references[i]) ? references[i].length : 1),
    bytes: (i) => bytes[i],
    overheadBytes: jsonBytes(body(0, 0)),
    body,
    label: (i) => `candidates[${i}] with its reference(s)`,
    count: (answer) => answer.f1?.length ?? 0,
    merge: (parts) => {
      sameModel(parts, (p) => p.model ?? "the default model");
      return {
        ...parts[0],
        precision: parts.flatMap((p) => p.precision),
        recall: parts.flatMap((p) => p.recall),
        f1: parts.flatMap((p) => p.f1),
        compute_precision: computePrecision(parts),
      };
    },
    whole: options.idf === true ? IDF_WHOLE : undefined,
  };
}

/** Which host answered (or hosts, for a split call), and a line on the split for the model. */
function served(gathered: Gathered<unknown>): { details: Record<string, unknown>; note: string } {
  const hosts = [...new Set(gathered.parts.map((p) => p.host))];
  if (gathered.parts.length === 1) {
    return { details: { host: hosts[0] }, note: "" };
  }
  return {
    details: { host: hosts.join(", "), parts: gathered.parts },
    note: `\nSplit into ${gathered.parts.length} requests over ${hosts.join(", ")}, because ${gathered.splitBecause?.replace(/\.+$/, "")}.`,
  };
}

/**
 * Builds the tools over a config that may be missing: then every tool answers with the reason instead of throwing,
 * so installing the plugin never breaks the gateway.
 */
export function createTools(config: ConfigResult, pool: HostPool | undefined): Tool[] {
  const run =
    (body: (config: GpuConfig, pool: HostPool, params: Record<string, unknown>, signal?: AbortSignal) => Promise<ToolResult>) =>
    async (_id: string, params: Record<string, unknown>, signal?: AbortSignal): Promise<ToolResult> => {
      if (!config.ok || !pool) {
        return text(`GPU plugin is not configured: ${config.ok ? "no host pool" : config.reason}`, { failure: { kind: "not_configured" } }, true);
      }
      try {
        return await body(config.config, pool, params ?? {}, signal);
      } catch (error) {
        return failure(error);
      }
    };

  return [
    {
      name: "gpu_health",
      label: "GPU health",
      description: "Checks that the GPU hosts are up: each host's health and device (cuda or cpu).",
      parameters: noParameters,
      execute: run(async (_c, pool, _p, signal) => {
        const answers = await pool.each<{ status?: string; device?: string }>("/health", signal);
        const up = answers.filter((a) => a.data);
        const lines = answers.map((a) => (a.data ? `${a.host.name}: ${a.data.status ?? "ok"} (${a.data.device ?? "?"})` : `${a.host.name}: down (${a.error})`));
        return text(
          `${up.length}/${answers.length} GPU host(s) up.\n${lines.join("\n")}`,
          { health: answers.map((a) => ({ host: a.host.name, url: a.host.url, up: Boolean(a.data), response: a.data, problem: a.error })) },
          up.length === 0,
        );
      }),
    },
    {
      name: "gpu_info",
      label: "GPU info",
      description: "Describes the GPU service: device, GPU name, memory, CUDA version and the loaded models, per host.",
      parameters: noParameters,
      execute: run(async (_c, pool, _p, signal) => {
        const answer = await pool.request<{ device?: string; device_name?: string; loaded_models?: string[] }>("/info", { signal });
        const info = answer.data;
        return text(
          `${answer.host}: ${info.device ?? "?"} ${info.device_name ?? ""}; loaded models: ${(info.loaded_models ?? []).join(", ") || "none"}`.trim(),
          { info, host: answer.host },
        );
      }),
    },
    {
      name: "gpu_status",
      label: "GPU status",
      description: "Shows the GPU job queue (running, waiting, free slots) and active jobs with their progress, per host.",
      parameters: noParameters,
      execute: run(async (_c, pool, _p, signal) => {
        const answers = await pool.each<{ queue?: { in_flight?: number; available_slots?: number; waiting_estimate?: number }; active_jobs?: unknown[] }>(
          "/status",
          signal,
        );
        const lines = answers.map((a) =>
          a.data
            ? `${a.host.name}: ${a.data.queue?.in_flight ?? 0} running, ${a.data.queue?.waiting_estimate ?? 0} waiting, ${a.data.queue?.available_slots ?? 0} free slot(s), ${a.data.active_jobs?.length ?? 0} active job(s)`
            : `${a.host.name}: unreachable (${a.error})`,
        );
        return text(lines.join("\n"), { queues: answers.map((a) => ({ host: a.host.name, response: a.data, problem: a.error })) }, answers.every((a) => !a.data));
      }),
    },
    {
      name: "gpu_bertscore",
      label: "BERTScore",
      description:
        "Scores candidate texts against reference texts with BERTScore (precision, recall, F1), computed on GPU hosts exactly as bert_score does. Calls larger than a host takes are split across the hosts, except with idf (the weights come from all the references of the call).",
      parameters: {
        type: "object",
        additionalProperties: false,
        required: ["candidates", "references"],
        properties: {
          candidates: stringArray("Texts to score."),
          references: {
            description: "One reference per candidate, or a list of references per candidate (the best score is kept).",
            anyOf: [stringArray("One reference per candidate."), { type: "array", minItems: 1, items: stringArray("References of one candidate.") }],
          },
          model_type: { type: "string", description: "Model, e.g. microsoft/deberta-xlarge-mnli (the service default) or roberta-large." },
          model: { type: "string", description: "Alias of model_type." },
          lang: { type: "string", description: "Language of the texts, for baseline rescaling (default en)." },
          num_layers: { type: "integer", minimum: 0, description: "Hidden layer to use (default: bert_score's choice for the model)." },
          idf: { type: "boolean", description: "Weigh tokens by inverse document frequency over the references." },
          rescale_with_baseline: { type: "boolean", description: "Rescale scores with bert_score's baseline for the model." },
          precision: precisionParameter,
        },
      },
      execute: run(async (config, pool, params, signal) => {
        const candidates = strings(params, "candidates", config);
        const refs = references(params, config);
        if (candidates.length !== refs.length) {
          throw new ServiceError(`${candidates.length} candidates but ${refs.length} references; they must pair up`, 400, "plugin");
        }
        const options: Record<string, unknown> = {};
        const model = params.model_type ?? params.model ?? config.models.bertscore;
        if (typeof model === "string") options.model_type = model;
        for (const key of ["lang", "num_layers", "idf", "rescale_with_baseline", "precision"]) {
          if (params[key] !== undefined) options[key] = params[key];
        }
        const gathered = await scatterGather(pool, bertscoreCall(candidates, refs, options), { maxRequestBytes: config.limits.maxRequestBytes, signal });
        const r = gathered.data;
        const { details, note } = served(gathered);
        const f1 = r.f1.map((v, i) => `#${i}: ${v === null ? "n/a" : v.toFixed(4)}`);
        return text(
          `BERTScore (${r.model ?? model ?? "default model"}${precisionNote(r.compute_precision)}) over ${r.f1.length} pair(s): mean P ${mean(r.precision).toFixed(4)}, R ${mean(r.recall).toFixed(4)}, F1 ${mean(r.f1).toFixed(4)}.\nF1 per pair: ${f1.slice(0, 20).join(", ")}${f1.length > 20 ? ", …" : ""}${note}`,
          { bertscore: r, ...details },
        );
      }),
    },
    {
      name: "gpu_embed",
      label: "Embeddings",
      description:
        "Computes sentence embeddings for texts on GPU hosts (default all-MiniLM-L6-v2, L2-normalised). Calls larger than a host takes are split across the hosts.",
      parameters: {
        type: "object",
        additionalProperties: false,
        required: ["texts"],
        properties: {
          texts: stringArray("Texts to embed."),
          model: { type: "string", description: "Embedding model, e.g. all-MiniLM-L6-v2 (the default)." },
          precision: precisionParameter,
        },
      },
      execute: run(async (config, pool, params, signal) => {
        const texts = strings(params, "texts", config);
        const model = typeof params.model === "string" ? params.model : config.models.embed;
        const precision = typeof params.precision === "string" ? params.precision : undefined;
        const gathered = await scatterGather(pool, embedCall(texts, model, precision), { maxRequestBytes: config.limits.maxRequestBytes, signal });
        const r = gathered.data;
        const { details, note } = served(gathered);
        const preview = r.embeddings[0]?.slice(0, 4).map((v) => v.toFixed(4)).join(", ");
        // Vectors are summarised for the model; the full vectors are in details.
        return text(
          `Embedded ${r.embeddings.length} text(s) with ${r.model}${precisionNote(r.compute_precision)}: ${r.dimensions} dimensions each (first vector starts ${preview}, …). Full vectors are in the tool result details.${note}`,
          { embeddings: r, ...details },
        );
      }),
    },
  ];
}
