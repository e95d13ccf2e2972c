using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Api;

/// <summary>
/// Through HTTP on a real front process, all-MiniLM-L6-v2 served from a safetensors checkpoint (made from the bundled
/// export's weights) through the native graph builder, not from its ONNX file: <c>/embed</c> and <c>/bertscore</c>
/// still give the oracles' numbers.
/// </summary>
public sealed class NativeMiniLmRouteTests(NativeMiniLmRouteTests.Host host) : IClassFixture<NativeMiniLmRouteTests.Host>
{
    private const string Model = "acme/minilm-native";

    [Fact]
    public async Task Embed_through_the_built_graph_equals_sentence_transformers_for_every_oracle_text()
    {
        using var http = host.Client();
        await OracleRoutes.AssertEmbedOracleAsync(http, Model, answeredModel: Model);
        Assert.Contains($"Built the native graph of {Model}", host.Front.Output);
    }

    public static TheoryData<string> Runs => OracleRoutes.Runs;

    [Theory]
    [MemberData(nameof(Runs))]
    public async Task Bertscore_through_the_built_graph_equals_bert_score_for_every_oracle_run(string run)
    {
        using var http = host.Client();
        await OracleRoutes.AssertBertScoreRunAsync(http, run, Model);
    }

    /// <summary>A front whose models folder holds the MiniLM checkpoint without its ONNX file.</summary>
    public sealed class Host : IAsyncLifetime
    {
        private readonly string _root = Directory.CreateTempSubdirectory("native-minilm-front-").FullName;

        public ServiceProcess Front { get; private set; } = null!;

        public async ValueTask InitializeAsync()
        {
            var models = Path.Combine(_root, "models");
            NativeMiniLm.WriteFolder(Path.Combine(models, Model));
            Front = ServiceProcess.Start(models, new Dictionary<string, string> { ["GRAPHS_DIR"] = Path.Combine(_root, "graphs") });
            await Front.WaitUntilHealthyAsync();
        }

        public HttpClient Client() => new() { BaseAddress = Front.BaseAddress, Timeout = TimeSpan.FromMinutes(5) };

        public async ValueTask DisposeAsync()
        {
            await Front.DisposeAsync();
            Directory.Delete(_root, recursive: true);
        }
    }
}
