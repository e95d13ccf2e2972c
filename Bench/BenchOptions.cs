namespace OrleansGpu.Bench;

/// <summary>Command-line options shared by all scenarios (<c>--name value</c> pairs).</summary>
internal sealed record BenchOptions(
    string Url,
    string? Key,
    string Scenario,
    int Requests,
    int Concurrency,
    int Batch,
    string? Model,
    string? Output,
    string? Onnx,
    string Device,
    string Shapes,
    double Seconds,
    string? Oracle,
    string? ModelsDirectory,
    string? Native,
    string Variants,
    int? Layers,
    string? GraphCache,
    int Threads,
    string Packing,
    string Precisions,
    int Rounds,
    string? BertScoreOracle,
    int Callers,
    string? Precision)
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
            Int("--concurrency", scenario == "embed-2048" ? 1 : 4),
            Int("--batch", scenario switch { "bertscore" => 16, "embed-2048" => 2048, _ => 32 }),
            Get("--model"),
            Get("--out"),
            Get("--onnx"),
            Get("--device") ?? "auto",
            Get("--shapes") ?? "32x20,256x20,64x128",
            double.TryParse(Get("--seconds"), System.Globalization.CultureInfo.InvariantCulture, out var s) && s > 0 ? s : 3,
            Get("--oracle"),
            Get("--models"),
            Get("--native"),
            Get("--variants") ?? "plain,fused",
            int.TryParse(Get("--layers"), out var layers) && layers >= 0 ? layers : null,
            Get("--graph-cache"),
            Int("--threads", 0),
            Get("--packing") ?? "padded,packed",
            Get("--precisions") ?? "fp32",
            Int("--rounds", 1),
            Get("--bertscore-oracle"),
            Int("--callers", 1),
            Get("--precision"));
    }
}
