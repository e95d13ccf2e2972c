namespace OrleansGpu.Inference.Onnx;

/// <summary>Where a model runs, parsed from the device setting: <c>auto</c>, <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.</summary>
public readonly record struct ExecutionDevice(ExecutionDeviceKind Kind, int DeviceId)
{
    public static ExecutionDevice Auto => new(ExecutionDeviceKind.Auto, 0);

    public static ExecutionDevice Cpu => new(ExecutionDeviceKind.Cpu, 0);

    public static ExecutionDevice Cuda(int deviceId = 0) => new(ExecutionDeviceKind.Cuda, deviceId);

    /// <summary>Parses the setting; empty means <c>auto</c>. <c>gpu</c> is accepted as a synonym of <c>cuda</c>.</summary>
    public static ExecutionDevice Parse(string? setting)
    {
        var s = (setting ?? string.Empty).Trim().ToLowerInvariant();
        if (s is "" or "auto")
        {
            return Auto;
        }

        if (s == "cpu")
        {
            return Cpu;
        }

        if (s is "cuda" or "gpu")
        {
            return Cuda();
        }

        if ((s.StartsWith("cuda:", StringComparison.Ordinal) || s.StartsWith("gpu:", StringComparison.Ordinal))
            && int.TryParse(s[(s.IndexOf(':') + 1)..], out var id) && id >= 0)
        {
            return Cuda(id);
        }

        throw new ArgumentException($"Unknown device '{setting}': use auto, cpu, cuda or cuda:N.", nameof(setting));
    }

    public override string ToString() => Kind switch
    {
        ExecutionDeviceKind.Auto => "auto",
        ExecutionDeviceKind.Cpu => "cpu",
        _ => $"cuda:{DeviceId}",
    };
}

public enum ExecutionDeviceKind
{
    Auto,
    Cpu,
    Cuda,
}
