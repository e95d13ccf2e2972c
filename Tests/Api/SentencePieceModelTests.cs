using System.Text.Json.Nodes;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Api;

/// <summary>
/// A real front process (co-hosting its GPU silo) whose hub is a STAND-IN on loopback, serving a DeBERTa v3 style
/// model whose tokenizer is SentencePiece Unigram, as a tokenizer.json (as xlm-roberta-* have) or as the spm.model
/// alone (as microsoft/deberta-v3-* have):
/// the first request downloads it, builds its graph and scores with the oracle's numbers, so the tokenizer gave the
/// oracle's ids over the whole path (hub file selection, tokenizer check, loading, encoding).
/// </summary>
public sealed class SentencePieceModelTests(SentencePieceModelTests.Host host) : IClassFixture<SentencePieceModelTests.Host>
{
    private const string Model = "acme/tiny-deberta-v3-unigram";

    private const string SpmModel = "acme/tiny-deberta-v3-spm";

    private static readonly int[] Candidates = [0, 1, 2, 3];

    private static readonly int[] References = [1, 2, 3, 0];

    [Theory]
    [InlineData(Model, "tokenizer.json")]
    [InlineData(SpmModel, "spm.model")]
    public async Task Stand_in_hub_a_deberta_v3_with_a_sentencepiece_tokenizer_json_or_spm_model_alone_is_downloaded_built_and_scored(string model, string tokenizerFile)
    {
        using var http = new HttpClient { BaseAddress = host.Front.BaseAddress, Timeout = TimeSpan.FromMinutes(5) };
        foreach (var (layer, idf) in new[] { (2, false), (3, true) })
        {
            var request = new JsonObject
            {
                ["candidates"] = new JsonArray([.. Candidates.Select(c => JsonValue.Create(TinyDebertaV2.Text(c)))]),
                ["references"] = new JsonArray([.. References.Select(r => JsonValue.Create(TinyDebertaV2.Text(r)))]),
                ["model_type"] = model,
                ["num_layers"] = layer,
                ["idf"] = idf,
            };
            var body = await OracleRoutes.PostAsync(http, "/bertscore", request);
            var expected = TinyDeberta.ExpectedScores(TinyDebertaV2.Oracle, Candidates, References, layer, idf);
            foreach (var (name, values) in new[] { ("precision", expected.P), ("recall", expected.R), ("f1", expected.F) })
            {
                var actual = body.GetProperty(name).EnumerateArray().Select(v => v.GetDouble()).ToArray();
                Assert.Equal(values.Length, actual.Length);
                var worst = values.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
                Assert.True(worst <= 1e-5, $"{name} at layer {layer}: max |Δ| = {worst:E2}");
            }
        }

        Assert.Contains(host.Hub.Requests, r => r.Path.Contains($"{model}/resolve/", StringComparison.Ordinal) && r.Path.EndsWith("/" + tokenizerFile, StringComparison.Ordinal));
    }

    /// <summary>The stand-in hub with the repo, and the front with its caches in a temp folder.</summary>
    public sealed class Host : IAsyncLifetime
    {
        private readonly string _root = Directory.CreateTempSubdirectory("spm-front-").FullName;

        public HubStandIn Hub { get; private set; } = null!;

        public ServiceProcess Front { get; private set; } = null!;

        public async ValueTask InitializeAsync()
        {
            Hub = await HubStandIn.StartAsync();
            Hub.Add(Model, TinyDebertaV2.Repo());
            Hub.Add(SpmModel, TinyDebertaV2.SpmRepo());
            Front = ServiceProcess.Start(Path.Combine(_root, "models"), Hub.ServiceEnvironment(Path.Combine(_root, "hf-cache"), ("GRAPHS_DIR", Path.Combine(_root, "graphs"))));
            await Front.WaitUntilHealthyAsync();
        }

        public async ValueTask DisposeAsync()
        {
            await Front.DisposeAsync();
            await Hub.DisposeAsync();
            Directory.Delete(_root, recursive: true);
        }
    }
}
