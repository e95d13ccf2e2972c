using Microsoft.ML.OnnxRuntime;

namespace OrleansGpu.Inference.Onnx;

/// <summary>
/// The seam where one forward pass meets the ONNX Runtime session: every pass the engine runs goes through
/// <see cref="EncoderOptions.PassRunner"/>. Production runs the session (<see cref="SessionPassRunner"/>); tests wrap it to
/// make passes fail as a device would (out of memory above some size, or always), which a CPU cannot be made to do.
/// </summary>
public interface IPassRunner
{
    /// <summary>Runs <paramref name="sequences"/> as one padded pass of <paramref name="encoder"/>.</summary>
    HiddenStates Run(OnnxEncoder encoder, IReadOnlyList<int[]> sequences, int padId);
}

/// <summary>The real pass: the encoder's session runs it.</summary>
public sealed class SessionPassRunner : IPassRunner
{
    public static readonly SessionPassRunner Instance = new();

    private SessionPassRunner()
    {
    }

    public HiddenStates Run(OnnxEncoder encoder, IReadOnlyList<int[]> sequences, int padId) => encoder.Run(sequences, padId);
}

/// <summary>
/// Which ONNX Runtime failures mean the device ran out of memory for a pass: the pass may succeed smaller, and the
/// session is still good. ONNX Runtime reports these as a plain <see cref="OnnxRuntimeException"/>; only the message
/// (from the CUDA allocator, the BFC arena or CUDA itself) tells them apart.
/// </summary>
public static class OutOfDeviceMemory
{
    private static readonly string[] Signs =
    [
        "Failed to allocate memory",
        "out of memory",
        "BFCArena",
        "cudaErrorMemoryAllocation",
        "CUBLAS_STATUS_ALLOC_FAILED",
        "CUDNN_STATUS_ALLOC_FAILED",
        "CUDNN_STATUS_NOT_ENOUGH_WORKSPACE",
        "bad_alloc",
    ];

    public static bool Is(Exception error) =>
        error is OnnxRuntimeException && Signs.Any(s => error.Message.Contains(s, StringComparison.OrdinalIgnoreCase));
}

/// <summary>
/// One sequence alone does not fit in the device's memory (after its pass was split down to it): the host cannot serve
/// it now, another host (or this one later) may. The session stays loaded.
/// </summary>
public sealed class DeviceOutOfMemoryException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A forward pass failed for a reason of the host (its device, its runtime), not of the request.</summary>
public sealed class PassFailedException(string message, Exception inner) : Exception(message, inner);
