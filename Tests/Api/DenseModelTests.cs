using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Api;

/// <summary>
/// A real front process (co-hosting its GPU silo) serving sentence-transformers models with <c>Dense</c> modules: one
/// downloaded from a hub STAND-IN on loopback (Dense weights as safetensors), one from the models folder (as
/// pytorch_model.bin). Both answer /embed and /v1/embeddings with the Dense output size and the vectors that the
/// bundled MiniLM's own un-normalised output gives through the same weights, computed in the test in double.
/// </summary>
public sealed class DenseModelTests : IAsyncLifetime
{
    private const string HubModel = "acme/minilm-dense-st";

    private const string FolderModel = "acme/minilm-dense-bin";

    private static readonly string[] Texts = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."];

    private static readonly DenseSpec[] Head =
    [
        new("2_Dense", 384, 256, Bias: true, DenseSpec.Tanh, Seed: 21),
        new("3_Dense", 256, 128, Bias: false, DenseSpec.Identity, Seed: 22),
    ];

    /// <summary>A decoy: the other weights format of the hub repo's first Dense module, which a download must not take.</summary>
    private static readonly byte[] DenseDecoy = TestRepos.Text("decoy: 2_Dense/pytorch_model.bin must not be downloaded when model.safetensors is there");

    private HubFront _setup = null!;

    public async ValueTask InitializeAsync() => _setup = await HubFront.StartAsync("front-dense-cache-", (hub, models) =>
    {
        var repo = DenseSpec.MiniLmWithDense(Head, "safetensors");
        repo["2_Dense/pytorch_model.bin"] = DenseDecoy;
        hub.Add(HubModel, repo);
        hub.Add("acme/dense-softmax", DenseSpec.MiniLmWithDense([new("2_Dense", 384, 256, Bias: true, "torch.nn.modules.activation.Softmax", Seed: 23)], "safetensors"));

        var local = DenseSpec.MiniLmWithDense(Head, "bin");
        local.Remove("onnx/model.onnx");
        var folder = DenseSpec.WriteFolder(Path.Combine(models, FolderModel), local);
        File.CreateSymbolicLink(Path.Combine(folder, "model.onnx"), Path.Combine(models, TestModelsFolder.CopyName, "model.onnx"));
    });

    public ValueTask DisposeAsync() => _setup.DisposeAsync();

    [Fact]
    public async Task Stand_in_hub_and_models_folder_dense_models_are_served_over_http_with_the_dense_output_and_an_unknown_activation_is_refused_before_download()
    {
        var ct = TestContext.Current.CancellationToken;
        using var http = new HttpClient { BaseAddress = _setup.Front.BaseAddress, Timeout = TimeSpan.FromMinutes(3) };
        Assert.True(File.Exists(Path.Combine(_setup.Models.Directory, TestModelsFolder.CopyName, "model.onnx")), "the models folder lays MiniLM out with model.onnx at its root");

        // The bundled MiniLM's own un-normalised mean-pooled output: what the Dense modules take.
        var pooled = await EmbedAsync(http, new { texts = Texts, normalize = false }, ct);
        Assert.Equal(384, pooled.GetProperty("dimensions").GetInt32());
        var plain = Rows(pooled);

        // An activation this service does not apply: 400 naming it, before the weights are downloaded.
        using (var refused = await http.PostAsJsonAsync("/embed", new { texts = Texts, model = "acme/dense-softmax" }, ct))
        {
            var body = await refused.Content.ReadFromJsonAsync<JsonElement>(ct);
            Assert.True(refused.StatusCode == HttpStatusCode.BadRequest, $"{(int)refused.StatusCode} {body}");
            Assert.Equal("model_unsupported", body.GetProperty("code").GetString());
            var detail = body.GetProperty("detail").GetString()!;
            Assert.Contains("torch.nn.modules.activation.Softmax", detail);
            Assert.Contains("2_Dense", detail);
            Assert.DoesNotContain(_setup.Cache, detail);
        }

        Assert.Empty(_setup.Hub.CdnGets(TestRepos.MiniLmOnnx));
        Assert.DoesNotContain(Fetched("acme/dense-softmax"), f => f.EndsWith("model.safetensors", StringComparison.Ordinal));

        foreach (var model in new[] { HubModel, FolderModel })
        {
            var seed = await EmbedAsync(http, new { texts = Texts, model }, ct);
            Assert.Equal(128, seed.GetProperty("dimensions").GetInt32());
            var rows = Rows(seed);
            AssertExpected(plain, rows, normalize: true, model);

            var raw = Rows(await EmbedAsync(http, new { texts = Texts, model, normalize = false }, ct));
            AssertExpected(plain, raw, normalize: false, model);

            using var openAi = await http.PostAsJsonAsync("/v1/embeddings", new { input = Texts, model }, ct);
            var list = await openAi.Content.ReadFromJsonAsync<JsonElement>(ct);
            Assert.True(openAi.StatusCode == HttpStatusCode.OK, $"{model}: {(int)openAi.StatusCode} {list}");
            var data = list.GetProperty("data").EnumerateArray().Select(d => d.GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray();
            Assert.All(data, v => Assert.Equal(128, v.Length));
            AssertExpected(plain, data, normalize: true, model);
        }

        // The hub download took the Dense modules' configs and safetensors weights, and not their other format.
        var fetched = Fetched(HubModel);
        Assert.Contains("2_Dense/config.json", fetched);
        Assert.Contains("2_Dense/model.safetensors", fetched);
        Assert.Contains("3_Dense/model.safetensors", fetched);
        Assert.DoesNotContain("2_Dense/pytorch_model.bin", fetched);
        Assert.Single(_setup.Hub.CdnGets(TestRepos.MiniLmOnnx));

        // /info reports the Dense output size for both.
        var info = await http.GetFromJsonAsync<JsonElement>("/info", ct);
        var loaded = info.GetProperty("hosts").EnumerateArray().SelectMany(h => h.GetProperty("models").EnumerateArray()).ToList();
        foreach (var model in new[] { HubModel, FolderModel })
        {
            Assert.Equal(128, loaded.Single(m => m.GetProperty("name").GetString() == model).GetProperty("dimensions").GetInt32());
        }

        // Both read their graph through a link (the Hugging Face cache's snapshot files link into its blobs; the folder
        // model links to the bundled graph): the host's memory counts what the links point to, the graph's bytes, and
        // the Dense modules' weights (384 × 256 + 256 and 256 × 128 floats).
        var graphBytes = new FileInfo(Path.Combine(_setup.Models.Directory, TestModelsFolder.CopyName, "model.onnx")).Length
            + (4 * ((384 * 256) + 256 + (256 * 128)));
        var hostModels = info.GetProperty("hosts").EnumerateArray().SelectMany(h => h.GetProperty("models").EnumerateArray()).ToList();
        foreach (var model in new[] { HubModel, FolderModel })
        {
            Assert.True(
                hostModels.Single(m => m.GetProperty("name").GetString() == model).GetProperty("weight_bytes").GetInt64() >= graphBytes,
                $"{model}: {hostModels.Single(m => m.GetProperty("name").GetString() == model)} against a {graphBytes}-byte graph");
        }
    }

    private static async Task<JsonElement> EmbedAsync(HttpClient http, object request, CancellationToken ct)
    {
        using var response = await http.PostAsJsonAsync("/embed", request, ct);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(ct);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode} {body}");
        return body;
    }

    private static float[][] Rows(JsonElement body) =>
        [.. body.GetProperty("embeddings").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetSingle()).ToArray())];

    private static void AssertExpected(float[][] pooled, float[][] actual, bool normalize, string model)
    {
        Assert.Equal(pooled.Length, actual.Length);
        var worst = 0.0;
        for (var t = 0; t < pooled.Length; t++)
        {
            var expected = DenseSpec.Expected(pooled[t], Head, normalize);
            Assert.Equal(expected.Length, actual[t].Length);
            worst = Math.Max(worst, expected.Zip(actual[t], (e, a) => Math.Abs(e - a)).Max());
        }

        Assert.True(worst <= 1e-5, $"{model} (normalize {normalize}): max |Δ| = {worst:E2}");
    }

    private HashSet<string> Fetched(string repo) =>
        [.. _setup.Hub.Requests
            .Where(r => r.Server == "hub" && r.Method == "GET" && r.Path.Contains($"/{repo}/resolve/", StringComparison.Ordinal))
            .Select(r => r.Path.Split("/resolve/")[1].Split('/', 2)[1])];
}
