using System.Globalization;
using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Grains;

/// <summary>How many jobs a host runs at once, and where that number came from (shown in <c>/status</c>).</summary>
public sealed record AdmissionLimit(int Value, string Source);

/// <summary>
/// The rule that sizes a host's admission when <c>GPU_MAX_CONCURRENT</c> is not set. The batcher can only merge the
/// texts of admitted jobs, so a host admits enough of them to fill the forward passes its workers run, a few passes
/// ahead: <see cref="PassesAhead"/> × workers × texts per pass ÷ texts per request (<c>GPU_EMBED_BATCH</c>, the
/// seed's request chunk), at least the seed's 2. With the defaults that is 64 on a GPU (passes of 256 texts, where
/// run 3-5 on an H200 measured 64 as the best setting) and 8 on the CPU (passes of 32 texts: the batcher then sorts
/// eight requests' texts by length, instead of two, and a worker never waits for the next request to arrive).
/// Memory per pass stays bounded by the batch limits whatever the admission.
/// </summary>
public static class HostAdmission
{
    /// <summary>How many rounds of full passes the admitted jobs hold for the workers.</summary>
    public const int PassesAhead = 4;

    /// <summary>The seed's default, and the least a host admits.</summary>
    public const int Minimum = 2;

    /// <summary>The length of a short text, in tokens, for how many texts a pass's token budget holds.</summary>
    private const int ShortTextTokens = 32;

    /// <summary>The admission of a host with these settings whose models run on a GPU or on the CPU.</summary>
    public static AdmissionLimit Resolve(GpuHostOptions options, bool onGpu) => Resolve(options, onGpu, new BatchLimits().Workers);

    /// <summary>The admission for a batcher of <paramref name="workers"/> workers (the rule, apart from the defaults).</summary>
    public static AdmissionLimit Resolve(GpuHostOptions options, bool onGpu, int workers)
    {
        if (options.MaxConcurrent is { } set)
        {
            return new AdmissionLimit(set, "GPU_MAX_CONCURRENT");
        }

        var limits = new BatchLimits { MaxBatchTokens = options.MaxBatchTokens, MaxBatchSequences = options.MaxBatchSequences };
        var perPass = Math.Max(1, Math.Min(limits.SequencesFor(onGpu), options.MaxBatchTokens / ShortTextTokens));
        var texts = (long)PassesAhead * Math.Max(1, workers) * perPass;
        var value = (int)Math.Max(Minimum, Math.Min(int.MaxValue, (texts + options.EmbedBatch - 1) / options.EmbedBatch));
        var source = string.Create(
            CultureInfo.InvariantCulture,
            $"default for {(onGpu ? "a GPU" : "the CPU")}: {PassesAhead} rounds × {workers} workers × {perPass} texts per pass ÷ GPU_EMBED_BATCH {options.EmbedBatch}");
        return new AdmissionLimit(value, source);
    }

    /// <summary>Whether the host's models are expected on a GPU before any has loaded: only when the device is set to CUDA.</summary>
    public static bool ExpectedOnGpu(GpuHostOptions options) => ExecutionDevice.Parse(options.Device).Kind == ExecutionDeviceKind.Cuda;
}
