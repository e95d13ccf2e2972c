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

    /// <summary>
    /// The most a CUDA session's memory arena may hold, weights and activations together (ONNX Runtime's
    /// <c>gpu_mem_limit</c>); null: no limit of ours. Hosts set it to their memory budget, so that one large pass fails
    /// with an out-of-memory error the batcher answers by splitting the pass, instead of the arena growing past the
    /// budget into memory that other models or processes were counting on.
    /// </summary>
    public long? GpuMemoryLimit { get; init; }

    /// <summary>
    /// CPU threads for one session; 0 (the default) shares the cores among <see cref="ConcurrentRuns"/>, or, for a
    /// session run by one caller at a time, lets ONNX Runtime decide (one per physical core).
    /// </summary>
    public int IntraOpThreads { get; init; }

    /// <summary>
    /// The graph computes in float16 (<c>GraphPrecision.Fp16</c>). On the CPU such a graph is opened short of the CPU-only
    /// layout optimisations (level 3): ONNX Runtime 1.31's NchwcTransformer crashes the process on some fp16 graphs
    /// (the padded fused DeBERTa ones). CUDA sessions are not affected.
    /// </summary>
    public bool Float16Graph { get; init; }

    /// <summary>
    /// How many forward passes run at once on the session (the batcher's workers, <see cref="Embeddings.BatchLimits.Workers"/>).
    /// On the CPU each pass computes on its caller's thread and the session's intra-op threads, so the cores are shared
    /// among the passes: intra-op threads × concurrent passes ≤ cores (<see cref="CpuIntraOpThreads"/>).
    /// </summary>
    public int ConcurrentRuns { get; init; } = 1;

    /// <summary>
    /// The intra-op threads of a CPU session: <see cref="IntraOpThreads"/> when set; else the cores divided among
    /// <see cref="ConcurrentRuns"/> (at least one each); else 0, ONNX Runtime's own choice.
    /// </summary>
    public int CpuIntraOpThreads => CpuThreads(IntraOpThreads, ConcurrentRuns, Environment.ProcessorCount);

    /// <summary>The rule of <see cref="CpuIntraOpThreads"/> for given cores.</summary>
    public static int CpuThreads(int intraOpThreads, int concurrentRuns, int cores) =>
        intraOpThreads > 0 ? intraOpThreads
        : concurrentRuns > 1 ? Math.Max(1, cores / concurrentRuns)
        : 0;

    public ILogger Logger { get; init; } = NullLogger.Instance;

    /// <summary>
    /// Where the engine's forward passes run (<see cref="IPassRunner"/>): the session itself, unless a test wraps it to
    /// make passes fail as a GPU would.
    /// </summary>
    public IPassRunner PassRunner { get; init; } = SessionPassRunner.Instance;
}
