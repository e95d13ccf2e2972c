using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Api;

/// <summary>
/// A real front process (co-hosting its GPU silo) whose hub is a STAND-IN on loopback, serving models that have no
/// ONNX export: the first request downloads the checkpoint, builds the graph and scores, with no step by hand; after a
/// restart the Hugging Face cache and the graph cache serve it; what cannot be served is refused with a clear error
/// before any weights are downloaded.
/// </summary>
public sealed class NativeModelTests(NativeModelTests.Host host) : IClassFixture<NativeModelTests.Host>
{
    private const string Deberta = "acme/tiny-deberta";

    private static readonly int[] Candidates = [0, 1, 2, 3];

    private static readonly int[] References = [1, 2, 3, 0];

    [Fact]
    public async Task Stand_in_hub_a_deberta_without_onnx_is_downloaded_built_once_and_scored_on_first_use_then_after_a_restart_served_from_the_caches()
    {
        using var http = host.Client();

        // Four first requests at once, two at layer 2 and two at the default layer (the last, 3): one download, one
        // build per layer, and bert_score's numbers over the oracle's hidden states.
        var first = await Task.WhenAll(
            ScoreAsync(http, layer: 2, idf: false),
            ScoreAsync(http, layer: 2, idf: false),
            ScoreAsync(http, layer: null, idf: true),
            ScoreAsync(http, layer: null, idf: true));
        AssertScores(first[0], 2, idf: false);
        AssertScores(first[1], 2, idf: false);
        AssertScores(first[2], 3, idf: true);
        AssertScores(first[3], 3, idf: true);
        Assert.Single(host.Hub.CdnGets(host.Weights));
        Assert.Equal(2, Count(host.Front.Output, $"Built the native graph of {Deberta}"));
        var graphs = Directory.GetDirectories(host.Graphs);
        Assert.Equal(2, graphs.Length);
        var stamps = Stamps(graphs);
        var hubRequests = host.Hub.Requests.Count;

        // A restart: the model comes from the Hugging Face cache and its graphs from the graph cache.
        await host.RestartAsync();
        using var restarted = host.Client();
        AssertScores(await ScoreAsync(restarted, layer: 2, idf: false), 2, idf: false);
        AssertScores(await ScoreAsync(restarted, layer: null, idf: true), 3, idf: true);
        Assert.Equal(hubRequests, host.Hub.Requests.Count);
        Assert.DoesNotContain("Built the native graph", host.Front.Output);
        Assert.Equal(2, Count(host.Front.Output, $"Using the cached native graph of {Deberta}"));
        Assert.Equal(stamps, Stamps(Directory.GetDirectories(host.Graphs)));
    }

    [Fact]
    public async Task Stand_in_hub_models_that_cannot_be_served_or_read_get_errors_that_say_so_and_their_weights_are_not_downloaded()
    {
        using var http = host.Client();

        var sentencePiece = await ProblemAsync(http, "acme/spm-only", HttpStatusCode.BadRequest, "model_unsupported");
        Assert.Contains("SentencePiece (tokenizer.model)", sentencePiece);
        Assert.DoesNotContain(host.Hub.Requests, r => r.Path.Contains("acme/spm-only/resolve/", StringComparison.Ordinal));

        var gpt2 = await ProblemAsync(http, "acme/gpt2", HttpStatusCode.BadRequest, "model_unsupported");
        Assert.Contains("model_type 'gpt2'", gpt2);
        Assert.Contains("deberta", gpt2);
        Assert.Empty(host.Hub.CdnGets(host.Gpt2Weights));

        // Weights that are no checkpoint: this host's copy is at fault, not the request.
        var broken = await ProblemAsync(http, "acme/broken", HttpStatusCode.InternalServerError, "model_unreadable");
        Assert.Contains("cannot be read", broken);
        Assert.Contains("model.safetensors", broken);
    }

    private static async Task<JsonElement> ScoreAsync(HttpClient http, int? layer, bool idf)
    {
        var request = new JsonObject
        {
            ["candidates"] = new JsonArray([.. Candidates.Select(c => JsonValue.Create(TinyDeberta.Text(c)))]),
            ["references"] = new JsonArray([.. References.Select(r => JsonValue.Create(TinyDeberta.Text(r)))]),
            ["model_type"] = Deberta,
            ["idf"] = idf,
        };
        if (layer is { } l)
        {
            request["num_layers"] = l;
        }

        return await OracleRoutes.PostAsync(http, "/bertscore", request);
    }

    private static void AssertScores(JsonElement body, int layer, bool idf)
    {
        Assert.Equal(layer, body.GetProperty("num_layers").GetInt32());
        var expected = TinyDeberta.ExpectedScores(Candidates, References, layer, idf);
        foreach (var (name, values) in new[] { ("precision", expected.P), ("recall", expected.R), ("f1", expected.F) })
        {
            var actual = body.GetProperty(name).EnumerateArray().Select(v => v.GetDouble()).ToArray();
            Assert.Equal(values.Length, actual.Length);
            var worst = values.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
            Assert.True(worst <= 1e-5, $"{name} at layer {layer}: max |Δ| = {worst:E2}");
        }
    }

    private async Task<string> ProblemAsync(HttpClient http, string model, HttpStatusCode status, string code)
    {
        using var response = await http.PostAsJsonAsync(
            "/bertscore", new { candidates = new[] { "a b" }, references = new[] { "a c" }, model_type = model }, TestContext.Current.CancellationToken);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(TestContext.Current.CancellationToken);
        Assert.True(status == response.StatusCode, $"{model}: {(int)response.StatusCode} {body}");
        Assert.Equal(code, body.GetProperty("code").GetString());
        var detail = body.GetProperty("detail").GetString()!;
        Assert.Contains(model, detail);
        Assert.DoesNotContain(host.Root, detail);
        return detail;
    }

    private static int Count(string text, string line) => text.Split('\n').Count(l => l.Contains(line, StringComparison.Ordinal));

    private static List<(string, DateTime)> Stamps(IEnumerable<string> folders) =>
        [.. folders.SelectMany(f => Directory.GetFiles(f)).Order(StringComparer.Ordinal).Select(f => (f, File.GetLastWriteTimeUtc(f)))];

    /// <summary>The stand-in hub with the repos, and the front with its caches in a temp folder, restartable.</summary>
    public sealed class Host : IAsyncLifetime
    {
        public string Root { get; } = Directory.CreateTempSubdirectory("native-front-").FullName;

        public HubStandIn Hub { get; private set; } = null!;

        public ServiceProcess Front { get; private set; } = null!;

        public string Graphs => Path.Combine(Root, "graphs");

        /// <summary>The tiny DeBERTa's pytorch_model.bin.</summary>
        public byte[] Weights { get; } = TinyDeberta.Repo()["pytorch_model.bin"];

        public byte[] Gpt2Weights { get; } = TestRepos.Tiny(seed: 21)["model.safetensors"];

        public async ValueTask InitializeAsync()
        {
            Hub = await HubStandIn.StartAsync();
            Hub.Add(Deberta, TinyDeberta.Repo());
            Hub.Add("acme/spm-only", new Dictionary<string, byte[]>
            {
                ["config.json"] = File.ReadAllBytes(Path.Combine(ArchitectureOracles.Folder("deberta-v2"), "config.json")),
                ["tokenizer.model"] = TestRepos.Tiny(seed: 22)["model.safetensors"],
                ["pytorch_model.bin"] = File.ReadAllBytes(Path.Combine(ArchitectureOracles.Folder("deberta-v2"), "pytorch_model.bin")),
            });
            Hub.Add("acme/gpt2", new Dictionary<string, byte[]>
            {
                ["config.json"] = TestRepos.Text("""{"model_type": "gpt2", "n_layer": 2}"""),
                ["vocab.json"] = TestRepos.Text("""{"<|endoftext|>": 0, "a": 1}"""),
                ["merges.txt"] = TestRepos.Text("#version: 0.2\n"),
                ["model.safetensors"] = Gpt2Weights,
            });
            Hub.Add("acme/broken", TestRepos.Tiny(seed: 23));
            await StartAsync();
        }

        public HttpClient Client() => new() { BaseAddress = Front.BaseAddress, Timeout = TimeSpan.FromMinutes(5) };

        public async Task RestartAsync()
        {
            await Front.DisposeAsync();
            await StartAsync();
        }

        private async Task StartAsync()
        {
            Front = ServiceProcess.Start(Path.Combine(Root, "models"), Hub.ServiceEnvironment(Path.Combine(Root, "hf-cache"), ("GRAPHS_DIR", Graphs)));
            await Front.WaitUntilHealthyAsync();
        }

        public async ValueTask DisposeAsync()
        {
            await Front.DisposeAsync();
            await Hub.DisposeAsync();
            Directory.Delete(Root, recursive: true);
        }
    }
}
