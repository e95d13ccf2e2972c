namespace OrleansGpu.Inference.Graphs;

/// <summary>
/// A checkpoint that makes up each tensor the builder asks for, at the shape the config implies: for timing an
/// architecture whose weights are not at hand (the benchmarks' random weights). Never used to serve.
/// </summary>
public interface ISyntheticCheckpoint
{
    float[] Make(string name, long[] shape);
}
