using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace OrleansGpu.Inference.Onnx;

/// <summary>How an <see cref="OnnxEncoder"/> session is opened.</summary>
public sealed record EncoderOptions
{
    public ExecutionDevice Device { get; init; } = ExecutionDevice.Auto;

    /// <summary>
    /// Allow TF32 matrix products on CUDA. Off by default: TF32 moves fp32 results by about 1e-3, and our numbers
    /// must equal the peers' fp32 numbers.
    /// </summary>
    public bool AllowTf32 { get; init; }

    /// <summary>CPU threads for one session; 0 lets ONNX Runtime decide (one per physical core).</summary>
    public int IntraOpThreads { get; init; }

    /// <summary>
    /// The graph computes in float16 (<c>GraphPrecision.Fp16</c>). On the CPU such a graph is opened short of the CPU-only
    /// layout optimisations (level 3): ONNX Runtime 1.31's NchwcTransformer crashes the process on some fp16 graphs
    /// (the padded fused DeBERTa ones). CUDA sessions are not affected.
    /// </summary>
    public bool Float16Graph { get; init; }

    public ILogger Logger { get; init; } = NullLogger.Instance;

    /// <summary>
    /// Where the engine's forward passes run (<see cref="IPassRunner"/>): the session itself, unless a test wraps it to
    /// make passes fail as a GPU would.
    /// </summary>
    public IPassRunner PassRunner { get; init; } = SessionPassRunner.Instance;
}
