using OrleansGpu.Inference.Checkpoints;
using OrleansGpu.Inference.Graphs;

namespace OrleansGpu.Bench;

/// <summary>
/// Random weights at the shapes a config implies, made as the builder asks for them: for timing an architecture
/// (deberta-xlarge-mnli, all-mpnet-base-v2, …) whose weights are not on this machine. Values are uniform with the
/// spread of a trained model's (LayerNorm weights near 1), which is all that speed depends on.
/// </summary>
internal sealed class RandomCheckpoint(int seed = 11) : ICheckpoint, ISyntheticCheckpoint
{
    private readonly Random _random = new(seed);

    public IReadOnlyCollection<string> Names => [];

    public bool Contains(string name) => false;

    public TensorInfo Info(string name) => throw new CheckpointException($"{name} is made on demand by the random checkpoint.");

    public float[] ReadFloat32(string name) => throw new CheckpointException($"{name} is made on demand by the random checkpoint.");

    public float[] Make(string name, long[] shape)
    {
        var values = new float[shape.Aggregate(1L, (n, d) => n * d)];
        var layerNormWeight = name.EndsWith("LayerNorm.weight", StringComparison.Ordinal) || name.EndsWith("layer_norm.weight", StringComparison.Ordinal);
        for (var i = 0; i < values.Length; i++)
        {
            var noise = (_random.NextSingle() - 0.5f) * 0.17f;
            values[i] = layerNormWeight ? 1f + noise : noise;
        }

        return values;
    }

    public void Dispose()
    {
    }
}
