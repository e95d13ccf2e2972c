using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;

// End-to-end load generator: sends /embed or /bertscore requests to a running front over HTTP at a fixed
// concurrency, prints throughput and latency percentiles, and writes the figures as JSON.
//
//   dotnet run -c Release --project Bench -- --url http://127.0.0.1:8765 --scenario embed-short --requests 200 --concurrency 8
//
// Scenarios: embed-short (~20 tokens per text), embed-long (~190 tokens), bertscore (pairs of ~30 tokens).
var options = BenchOptions.Parse(args);
using var http = new HttpClient { BaseAddress = new Uri(options.Url), Timeout = TimeSpan.FromMinutes(10) };
if (options.Key is { Length: > 0 } key)
{
    http.DefaultRequestHeaders.Add("X-API-Key", key);
}

var random = new Random(7);
var words = Corpus.Words;
string Sentence(int min, int max) =>
    string.Join(' ', Enumerable.Range(0, random.Next(min, max + 1)).Select(_ => words[random.Next(words.Length)])) + ".";

var payloads = Enumerable.Range(0, options.Requests).Select(_ => options.Scenario switch
{
    "embed-short" => (object)new { texts = Enumerable.Range(0, options.Batch).Select(_ => Sentence(8, 24)).ToArray(), model = options.Model },
    "embed-long" => new { texts = Enumerable.Range(0, options.Batch).Select(_ => Sentence(150, 220)).ToArray(), model = options.Model },
    "bertscore" => new
    {
        candidates = Enumerable.Range(0, options.Batch).Select(_ => Sentence(10, 40)).ToArray(),
        references = Enumerable.Range(0, options.Batch).Select(_ => Sentence(10, 40)).ToArray(),
        model_type = options.Model,
    },
    _ => throw new ArgumentException($"Unknown scenario {options.Scenario}"),
}).ToArray();
var path = options.Scenario.StartsWith("embed", StringComparison.Ordinal) ? "/embed" : "/bertscore";

// Warm up: the first call loads the model and the kernels.
(await http.PostAsJsonAsync(path, payloads[0])).EnsureSuccessStatusCode();

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
        using var response = await http.PostAsJsonAsync(path, payloads[i]);
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
var items = options.Requests * options.Batch;
var result = new
{
    scenario = options.Scenario,
    url = options.Url,
    model = options.Model,
    requests = options.Requests,
    batch = options.Batch,
    concurrency = options.Concurrency,
    failures,
    seconds = Math.Round(seconds, 3),
    items_per_s = Math.Round(items / seconds, 1),
    requests_per_s = Math.Round(options.Requests / seconds, 2),
    latency_ms = new { p50 = Math.Round(P(0.5), 1), p90 = Math.Round(P(0.9), 1), p99 = Math.Round(P(0.99), 1), max = Math.Round(latencies[^1], 1) },
    machine = $"{Environment.ProcessorCount} cores, {Environment.OSVersion}",
    at = DateTimeOffset.UtcNow,
};

var unit = options.Scenario == "bertscore" ? "pairs/s" : "texts/s";
Console.WriteLine($"| scenario | requests × batch | concurrency | {unit} | p50 ms | p99 ms | failures |");
Console.WriteLine("|---|---|---|---|---|---|---|");
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"| {options.Scenario} | {options.Requests} × {options.Batch} | {options.Concurrency} | {result.items_per_s:0.0} | {result.latency_ms.p50:0} | {result.latency_ms.p99:0} | {failures} |"));
if (options.Output is { } output)
{
    await File.WriteAllTextAsync(output, JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
}

return failures == 0 ? 0 : 1;

internal sealed record BenchOptions(string Url, string? Key, string Scenario, int Requests, int Concurrency, int Batch, string? Model, string? Output)
{
    public static BenchOptions Parse(string[] args)
    {
        string? Get(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();
        int Int(string name, int fallback) => int.TryParse(Get(name), out var v) && v > 0 ? v : fallback;
        var scenario = Get("--scenario") ?? "embed-short";
        return new BenchOptions(
            Get("--url") ?? "http://127.0.0.1:8765",
            Get("--key") ?? Environment.GetEnvironmentVariable("API_KEY"),
            scenario,
            Int("--requests", 100),
            Int("--concurrency", 4),
            Int("--batch", scenario == "bertscore" ? 16 : 32),
            Get("--model"),
            Get("--out"));
    }
}

/// <summary>Plain English words: realistic token lengths for BERT and BPE tokenizers alike.</summary>
internal static class Corpus
{
    public static readonly string[] Words =
    [
        "the", "market", "government", "report", "police", "city", "people", "children", "school", "season",
        "player", "water", "energy", "company", "election", "minister", "village", "history", "weather", "festival",
        "research", "hospital", "village", "mountain", "railway", "station", "friendship", "language", "computer", "science",
        "morning", "evening", "decision", "question", "answer", "museum", "painting", "football", "stadium", "journey",
        "ancient", "modern", "quickly", "slowly", "remarkable", "difficult", "important", "beautiful", "dangerous", "careful",
        "announced", "discovered", "travelled", "explained", "suggested", "increased", "reduced", "protected", "arrived", "decided",
    ];
}
