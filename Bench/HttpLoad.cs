using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace OrleansGpu.Bench;

/// <summary>
/// End-to-end load against a running front: sends /embed or /bertscore requests at a fixed concurrency and reports
/// throughput and latency percentiles.
/// <code>
/// dotnet Bench.dll --url http://127.0.0.1:8765 --scenario embed-short --requests 200 --concurrency 8 --batch 32
/// </code>
/// Scenarios: embed-short (~20 tokens per text), embed-long (~190 tokens), bertscore (pairs of ~30 tokens),
/// embed-oracle (the embedding oracle's real sentences, --oracle embed-public.json; also reports useful tokens/s),
/// embed-2048: what one request of 2,048 short inputs costs, sent to /v1/embeddings as the Vercel AI SDK and
/// OpenAI's cap send them (one at a time by default), status (GET /status: one grain call per host and no
/// inference, so the cost of the cluster's own round trip shows), and health (GET /health: the front's HTTP path
/// alone, no grain call). <c>--precision fp16|fp32</c> asks for that precision in every request; the answer's
/// <c>compute_precision</c> (what the host really ran) is recorded, with the first call's time (a cold load when the
/// model was not loaded yet).
/// </summary>
internal static class HttpLoad
{
    // Fields left unset (no model, no precision) are left out, as a client that does not know them would send.
    private static readonly JsonSerializerOptions Payload = new(JsonSerializerDefaults.Web) { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    public static async Task<int> RunAsync(BenchOptions options)
    {
        using var http = new HttpClient { BaseAddress = new Uri(options.Url), Timeout = TimeSpan.FromMinutes(10) };
        if (options.Key is { Length: > 0 } key)
        {
            http.DefaultRequestHeaders.Add("X-API-Key", key);
        }

        var corpus = new Corpus();

        // embed-oracle: real sentences of varied length (the embedding oracle's texts, in its order, cycled), with the
        // tokens the model reads in each known, so that useful tokens/s compares with raw ONNX Runtime's.
        var (oracleTexts, oracleIds) = options.Scenario == "embed-oracle"
            ? EmbedOracleFile.ReadTokens(options.Oracle ?? throw new ArgumentException("embed-oracle needs --oracle embed-public.json"))
            : ([], []);
        var tokens = new long[options.Requests];
        string[] OracleBatch(int request)
        {
            var texts = new string[options.Batch];
            for (var k = 0; k < texts.Length; k++)
            {
                var at = ((request * options.Batch) + k) % oracleTexts.Length;
                texts[k] = oracleTexts[at];
                tokens[request] += oracleIds[at].Length;
            }

            return texts;
        }

        var payloads = Enumerable.Range(0, options.Requests).Select(i => options.Scenario switch
        {
            "status" or "health" => null,
            "embed-short" => (object)new { texts = corpus.Sentences(options.Batch, 8, 24), model = options.Model, precision = options.Precision },
            "embed-oracle" => new { texts = OracleBatch(i), model = options.Model, precision = options.Precision },
            "embed-long" => new { texts = corpus.Sentences(options.Batch, 150, 220), model = options.Model, precision = options.Precision },
            "embed-2048" => new { input = corpus.Sentences(options.Batch, 8, 24), model = options.Model, precision = options.Precision },
            "bertscore" => new
            {
                candidates = corpus.Sentences(options.Batch, 10, 40),
                references = corpus.Sentences(options.Batch, 10, 40),
                model_type = options.Model,
                precision = options.Precision,
            },
            _ => throw new ArgumentException($"Unknown scenario {options.Scenario}"),
        }).ToArray();
        var path = options.Scenario switch
        {
            "status" => "/status",
            "health" => "/health",
            "embed-2048" => "/v1/embeddings",
            "bertscore" => "/bertscore",
            _ => "/embed",
        };
        Task<HttpResponseMessage> SendAsync(int i) => payloads[i] is { } payload ? http.PostAsJsonAsync(path, payload, Payload) : http.GetAsync(path);

        // Warm up: the first call loads the model and the kernels.
        var firstCall = Stopwatch.StartNew();
        using var first = await SendAsync(0);
        var firstBody = await first.Content.ReadAsStringAsync();
        if (!first.IsSuccessStatusCode)
        {
            throw new HttpRequestException($"The first {path} call answered {(int)first.StatusCode}: {firstBody}");
        }

        var firstCallMs = firstCall.Elapsed.TotalMilliseconds;
        var computePrecision = payloads[0] is null ? null : ComputePrecision(firstBody);

        var latencies = new double[options.Requests];
        var failures = 0;
        var next = -1;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, options.Concurrency).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < options.Requests)
            {
                var watch = Stopwatch.StartNew();
                using var response = await SendAsync(i);
                await response.Content.ReadAsByteArrayAsync();
                latencies[i] = watch.Elapsed.TotalMilliseconds;
                if (!response.IsSuccessStatusCode)
                {
                    Interlocked.Increment(ref failures);
                }
            }
        }));
        var seconds = clock.Elapsed.TotalSeconds;

        Array.Sort(latencies);
        double P(double q) => latencies[Math.Min(latencies.Length - 1, (int)(q * latencies.Length))];
        var batch = options.Scenario is "status" or "health" ? 1 : options.Batch;
        var items = options.Requests * batch;
        var result = new
        {
            scenario = options.Scenario,
            url = options.Url,
            model = options.Model,
            precision = options.Precision,
            compute_precision = computePrecision,
            first_call_ms = Math.Round(firstCallMs, 1),
            requests = options.Requests,
            batch,
            concurrency = options.Concurrency,
            failures,
            seconds = Math.Round(seconds, 3),
            items_per_s = Math.Round(items / seconds, 1),
            useful_tokens_per_s = options.Scenario == "embed-oracle" ? Math.Round(tokens.Sum() / seconds) : (double?)null,
            requests_per_s = Math.Round(options.Requests / seconds, 2),
            latency_ms = new { p50 = Math.Round(P(0.5), 1), p90 = Math.Round(P(0.9), 1), p99 = Math.Round(P(0.99), 1), max = Math.Round(latencies[^1], 1) },
            machine = Report.Machine,
            at = DateTimeOffset.UtcNow,
        };

        var unit = options.Scenario switch
        {
            "bertscore" => "pairs/s",
            "status" or "health" => "requests/s",
            _ => "texts/s",
        };
        Report.Table(
            $"| scenario | requests × batch | concurrency | {unit} | p50 ms | p99 ms | failures |",
            [string.Create(CultureInfo.InvariantCulture,
                $"| {options.Scenario} | {options.Requests} × {batch} | {options.Concurrency} | {result.items_per_s:0.0} | {result.latency_ms.p50:0} | {result.latency_ms.p99:0} | {failures} |")]);
        if (result.useful_tokens_per_s is { } useful)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"useful tokens/s: {useful:0} ({tokens.Sum() / (double)items:0.0} tokens per text)"));
        }

        Report.Save(options, result);
        return failures == 0 ? 0 : 1;
    }

    /// <summary>The precision the host says it computed in (every inference answer carries <c>compute_precision</c>).</summary>
    private static string? ComputePrecision(string body)
    {
        try
        {
            return JsonNode.Parse(body)?["compute_precision"]?.GetValue<string>();
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
