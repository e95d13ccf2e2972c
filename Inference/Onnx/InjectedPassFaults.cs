using System.Reflection;
using Microsoft.ML.OnnxRuntime;

namespace OrleansGpu.Inference.Onnx;

/// <summary>
/// TEST ONLY. A <see cref="IPassRunner"/> around the real one that fails passes as a GPU would: with ONNX Runtime's
/// own out-of-memory error (the CUDA arena's message) for passes above <see cref="OutOfMemoryAboveTokens"/> padded
/// tokens, or with a runtime error for every pass when <see cref="FailEveryPass"/>. It stands in for a device that runs
/// out of memory or breaks, which a CPU cannot be made to do; hosts turn it on only through the test-only settings
/// <c>ORLEANSGPU_TEST_OOM_ABOVE_TOKENS</c> and <c>ORLEANSGPU_TEST_FAIL_PASSES</c>.
/// </summary>
public sealed class InjectedPassFaults(IPassRunner inner) : IPassRunner
{
    /// <summary>Passes of more padded tokens (sequences × the longest) than this fail for memory; null: none.</summary>
    public int? OutOfMemoryAboveTokens { get; init; }

    /// <summary>Every pass fails with a runtime error (not one of memory).</summary>
    public bool FailEveryPass { get; init; }

    private long _injected;

    /// <summary>Passes failed on purpose so far.</summary>
    public long Injected => Interlocked.Read(ref _injected);

    public HiddenStates Run(OnnxEncoder encoder, IReadOnlyList<int[]> sequences, int padId)
    {
        if (FailEveryPass)
        {
            Interlocked.Increment(ref _injected);
            throw OrtError("[ErrorCode:Fail] Non-zero status code returned while running MatMul node. Name:'injected' Status Message: CUDA failure 700: an illegal memory access was encountered (injected for a test)");
        }

        var padded = (long)sequences.Count * sequences.Max(s => s.Length);
        if (padded > OutOfMemoryAboveTokens)
        {
            Interlocked.Increment(ref _injected);
            throw OrtError(
                $"[ErrorCode:RuntimeException] Non-zero status code returned while running Attention node. Name:'injected' Status Message: "
                + $"/onnxruntime_src/onnxruntime/core/framework/bfc_arena.cc:376 void* onnxruntime::BFCArena::AllocateRawInternal(size_t, bool, "
                + $"onnxruntime::Stream*, bool, onnxruntime::WaitNotificationFn) Failed to allocate memory for requested buffer of size {padded * 4096} (injected for a test: {padded} padded tokens)");
        }

        return inner.Run(encoder, sequences, padId);
    }

    /// <summary>An <see cref="OnnxRuntimeException"/> as ONNX Runtime throws it (its constructor is internal).</summary>
    public static OnnxRuntimeException OrtError(string message)
    {
        var constructor = typeof(OnnxRuntimeException)
            .GetConstructors(BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public)
            .Single(c => c.GetParameters() is [{ ParameterType.IsEnum: true }, { ParameterType: var s }] && s == typeof(string));
        var code = Enum.ToObject(constructor.GetParameters()[0].ParameterType, 1);
        return (OnnxRuntimeException)constructor.Invoke([code, message]);
    }
}
