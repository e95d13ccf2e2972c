using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Api;

/// <summary>
/// <c>precision</c> on the compute routes, on the shared front (a CPU host with the default settings): anything but
/// <c>fp32</c> or <c>fp16</c> is a 400 naming both; no precision is fp32 with the oracles' numbers; fp16 asked of a CPU
/// host is answered in fp32, with the oracles' numbers, and the answer says fp32.
/// </summary>
[Collection(FrontCollection.Name)]
public sealed class PrecisionTests(FrontFixture fixture)
{
    public static TheoryData<string, string> BadPrecisions => new()
    {
        { "/embed", """{"texts": ["a"], "precision": "fp8"}""" },
        { "/embed", """{"texts": ["a"], "precision": "FP16"}""" },
        { "/bertscore", """{"candidates": ["a"], "references": ["b"], "model": "all-MiniLM-L6-v2", "precision": "half"}""" },
        { "/bertscore", """{"candidates": ["a"], "references": ["b"], "model": "all-MiniLM-L6-v2", "precision": ""}""" },
        { "/v1/embeddings", """{"input": "a", "precision": "bf16"}""" },
    };

    [Theory]
    [MemberData(nameof(BadPrecisions))]
    public async Task A_precision_other_than_fp32_or_fp16_is_a_400_that_names_the_allowed_values(string route, string body)
    {
        using var http = fixture.Client();
        using var content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        using var response = await http.PostAsync(route, content, TestContext.Current.CancellationToken);
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{(int)response.StatusCode}: {text}");
        var error = JsonDocument.Parse(text).RootElement;
        if (route.StartsWith("/v1", StringComparison.Ordinal))
        {
            var inner = error.GetProperty("error");
            Assert.Equal("invalid_input", inner.GetProperty("code").GetString());
            Assert.Equal("precision", inner.GetProperty("param").GetString());
            Assert.Contains("'precision' must be fp32 or fp16", inner.GetProperty("message").GetString());
        }
        else
        {
            Assert.Equal("invalid_input", error.GetProperty("code").GetString());
            Assert.Contains("'precision' must be fp32 or fp16", error.GetProperty("detail").GetString());
        }
    }

    [Fact]
    public async Task Without_precision_the_answer_is_fp32_with_the_oracles_numbers()
    {
        using var http = fixture.Client();
        var embed = await PrecisionOracle.EmbedAsync(http, precision: null);
        Assert.Equal(["fp32"], embed.Precisions);
        Assert.True(embed.MaxDelta <= 1e-5, $"max |Δ| = {embed.MaxDelta:E2}");

        var openAi = await OracleRoutes.PostAsync(http, "/v1/embeddings", new { input = Oracles.Embed.Texts[..8] });
        Assert.Equal("fp32", openAi.GetProperty("compute_precision").GetString());

        foreach (var run in PrecisionOracle.Runs)
        {
            var (precision, f1Delta) = await PrecisionOracle.BertScoreAsync(http, run, precision: null);
            Assert.Equal("fp32", precision);
            Assert.True(f1Delta <= 1e-5, $"{run}: F1 max |Δ| = {f1Delta:E2}");
        }
    }

    [Fact]
    public async Task Fp16_asked_of_a_CPU_host_is_answered_in_fp32_with_the_oracles_numbers_and_says_fp32()
    {
        using var http = fixture.Client();
        var embed = await PrecisionOracle.EmbedAsync(http, "fp16");
        Assert.Equal(["fp32"], embed.Precisions);
        Assert.True(embed.MaxDelta <= 1e-5, $"max |Δ| = {embed.MaxDelta:E2}");

        var openAi = await OracleRoutes.PostAsync(http, "/v1/embeddings", new { input = Oracles.Embed.Texts[..8], precision = "fp16" });
        Assert.Equal("fp32", openAi.GetProperty("compute_precision").GetString());

        var (bertScorePrecision, f1Delta) = await PrecisionOracle.BertScoreAsync(http, "L4_idf", "fp16");
        Assert.Equal("fp32", bertScorePrecision);
        Assert.True(f1Delta <= 1e-5, $"F1 max |Δ| = {f1Delta:E2}");
    }
}

/// <summary>
/// A front whose host defaults all-MiniLM-L6-v2 to fp16 (<c>GPU_PRECISION=all-MiniLM-L6-v2=fp16</c>) and runs fp16 on
/// the CPU (<c>GPU_FP16_ON_CPU=true</c>): the CPU STAND-IN for a CUDA host. Requests without a precision get the fp16
/// graph, built from the bundled ONNX export's weights into its own graph cache entry, within issue 12's goals of the
/// oracles (embeddings: cosine ≥ 0.9999 per text and max |Δ| ≤ 2e-3; BERTScore F1 |Δ| ≤ 1e-3); fp32 asked on the same
/// host still gives the oracles' numbers within 1e-5. On the CPU the fp16 graph's products run in float32 between
/// float16-rounded values, so this checks the plumbing and the rounding, not CUDA's float16 arithmetic.
/// </summary>
public sealed class Fp16DefaultHostTests(Fp16DefaultHostTests.Host host) : IClassFixture<Fp16DefaultHostTests.Host>
{
    [Fact]
    public async Task Gpu_precision_default_fp16_embeds_with_the_fp16_graph_within_the_goals_of_the_oracle_cpu_stand_in()
    {
        using var http = host.Client();
        var fp16 = await PrecisionOracle.EmbedAsync(http, precision: null);
        Assert.Equal(["fp16"], fp16.Precisions);
        Assert.True(fp16.MinCosine >= 0.9999, $"min cosine {fp16.MinCosine:F7}");
        Assert.True(fp16.MaxDelta <= 2e-3, $"max |Δ| = {fp16.MaxDelta:E2}");

        // Not the fp32 graph under another label: float16 rounding moves the vectors measurably.
        Assert.True(fp16.MaxDelta > 1e-5, $"max |Δ| = {fp16.MaxDelta:E2}: the fp16 graph should differ from fp32");
        TestContext.Current.TestOutputHelper?.WriteLine($"fp16 (CPU stand-in) against the oracle: min cosine {fp16.MinCosine:F7}, max |Δ| {fp16.MaxDelta:E2}");

        var openAi = await OracleRoutes.PostAsync(http, "/v1/embeddings", new { input = Oracles.Embed.Texts[..8] });
        Assert.Equal("fp16", openAi.GetProperty("compute_precision").GetString());

        // The fp16 graph is its own entry of the graph cache, built from the export's weights.
        var manifests = Directory.GetFiles(host.Graphs, "build.json", SearchOption.AllDirectories).Select(File.ReadAllText).ToList();
        Assert.Contains(manifests, m => m.Contains("\"fp16\"", StringComparison.Ordinal));
        Assert.Contains("graph of sentence-transformers/all-MiniLM-L6-v2 from its ONNX export's weights", host.Front.Output);
    }

    [Fact]
    public async Task Fp32_asked_on_an_fp16_default_host_gives_the_oracles_numbers_from_its_own_sessions()
    {
        using var http = host.Client();
        var fp32 = await PrecisionOracle.EmbedAsync(http, "fp32");
        Assert.Equal(["fp32"], fp32.Precisions);
        Assert.True(fp32.MaxDelta <= 1e-5, $"max |Δ| = {fp32.MaxDelta:E2}");

        await PrecisionOracle.EmbedAsync(http, "fp16");
        var info = await http.GetFromJsonAsync<JsonElement>("/info", TestContext.Current.CancellationToken);
        var model = info.GetProperty("hosts")[0].GetProperty("models").EnumerateArray()
            .Single(m => m.GetProperty("name").GetString() == OracleRoutes.OracleModel);
        Assert.Equal(["fp32", "fp16"], model.GetProperty("precisions").EnumerateArray().Select(p => p.GetString()));
    }

    public static TheoryData<string> Runs => [.. PrecisionOracle.Runs];

    [Theory]
    [MemberData(nameof(Runs))]
    public async Task Bertscore_in_fp16_stays_within_1e_3_of_bert_score_cpu_stand_in(string run)
    {
        using var http = host.Client();
        var (precision, f1Delta) = await PrecisionOracle.BertScoreAsync(http, run, precision: null);
        Assert.Equal("fp16", precision);
        Assert.True(f1Delta <= 1e-3, $"{run}: F1 max |Δ| = {f1Delta:E2}");
        TestContext.Current.TestOutputHelper?.WriteLine($"{run} fp16 (CPU stand-in): F1 max |Δ| {f1Delta:E2}");

        var (exact, f1Exact) = await PrecisionOracle.BertScoreAsync(http, run, "fp32");
        Assert.Equal("fp32", exact);
        Assert.True(f1Exact <= 1e-5, $"{run} in fp32: F1 max |Δ| = {f1Exact:E2}");
    }

    public sealed class Host : IAsyncLifetime
    {
        private readonly TestModelsFolder _models = new();
        private readonly string _root = Directory.CreateTempSubdirectory("fp16-front-").FullName;

        public ServiceProcess Front { get; private set; } = null!;

        public string Graphs => Path.Combine(_root, "graphs");

        public async ValueTask InitializeAsync()
        {
            Front = ServiceProcess.Start(_models.Directory, new Dictionary<string, string>
            {
                ["GRAPHS_DIR"] = Graphs,
                ["GPU_PRECISION"] = "all-MiniLM-L6-v2=fp16",
                ["GPU_FP16_ON_CPU"] = "true",
            });
            await Front.WaitUntilHealthyAsync();
        }

        public HttpClient Client() => new() { BaseAddress = Front.BaseAddress, Timeout = TimeSpan.FromMinutes(5) };

        public async ValueTask DisposeAsync()
        {
            await Front.DisposeAsync();
            _models.Dispose();
            Directory.Delete(_root, recursive: true);
        }
    }
}

/// <summary>The oracles through HTTP with a precision, measured rather than asserted: the callers hold the bounds.</summary>
internal static class PrecisionOracle
{
    /// <summary>The oracle's runs without rescaling: issue 12's F1 bound is on raw scores.</summary>
    public static IReadOnlyList<string> Runs { get; } = ["L6_noidf", "L4_noidf", "L4_idf"];

    public sealed record EmbedResult(IReadOnlyList<string> Precisions, double MinCosine, double MaxDelta);

    /// <summary><c>/embed</c> of every oracle text with <paramref name="precision"/> (null: none sent).</summary>
    public static async Task<EmbedResult> EmbedAsync(HttpClient http, string? precision)
    {
        var oracle = Oracles.Embed;
        double minCosine = 1, maxDelta = 0;
        var precisions = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var chunk in Enumerable.Range(0, oracle.Texts.Length).Chunk(100))
        {
            var texts = chunk.Select(i => oracle.Texts[i]).ToArray();
            var body = await OracleRoutes.PostAsync(http, "/embed", precision is null ? new { texts } : new { texts, precision });
            precisions.Add(body.GetProperty("compute_precision").GetString()!);
            var rows = body.GetProperty("embeddings");
            for (var k = 0; k < chunk.Length; k++)
            {
                float[] actual = [.. rows[k].EnumerateArray().Select(v => v.GetSingle())];
                var expected = oracle.Embeddings[chunk[k]];
                double dot = 0, na = 0, nb = 0;
                for (var d = 0; d < expected.Length; d++)
                {
                    dot += actual[d] * (double)expected[d];
                    na += actual[d] * (double)actual[d];
                    nb += expected[d] * (double)expected[d];
                    maxDelta = Math.Max(maxDelta, Math.Abs(actual[d] - expected[d]));
                }

                minCosine = Math.Min(minCosine, dot / Math.Sqrt(na * nb));
            }
        }

        return new EmbedResult([.. precisions], minCosine, maxDelta);
    }

    /// <summary><c>/bertscore</c> of one oracle run with <paramref name="precision"/>: the precision answered and F1's largest difference from bert_score.</summary>
    public static async Task<(string Precision, double F1Delta)> BertScoreAsync(HttpClient http, string run, string? precision)
    {
        var oracle = Oracles.BertScore;
        var request = new JsonObject
        {
            ["candidates"] = new JsonArray([.. oracle.Candidates.Select(c => JsonValue.Create(c))]),
            ["references"] = new JsonArray([.. oracle.References.Select(r => JsonValue.Create(r))]),
            ["model_type"] = "all-MiniLM-L6-v2",
            ["idf"] = run.Contains("_idf", StringComparison.Ordinal),
            ["num_layers"] = run.StartsWith("L4", StringComparison.Ordinal) ? 4 : 6,
        };
        if (precision is not null)
        {
            request["precision"] = precision;
        }

        var body = await OracleRoutes.PostAsync(http, "/bertscore", request);
        var expected = oracle.Runs[run].F;
        var f1 = body.GetProperty("f1");
        Assert.Equal(expected.Length, f1.GetArrayLength());
        var worst = expected.Select((e, i) => Math.Abs(e - f1[i].GetDouble())).Max();
        return (body.GetProperty("compute_precision").GetString()!, worst);
    }
}
