using System.Globalization;

namespace OrleansGpu.Grains;

/// <summary>
/// A host's memory budget as <c>GPU_MEMORY_BUDGET</c> gives it: bytes (<c>12GiB</c>, <c>800MiB</c>, <c>2GB</c>,
/// <c>1073741824</c>) or a share of the device's memory (<c>80%</c>: of the GPU's on CUDA, of physical RAM on the CPU).
/// Without a setting the host takes <see cref="DefaultGpuShare"/> of its GPU's memory (ONNX Runtime's CUDA workspace
/// and the driver need the rest) or <see cref="DefaultRamShare"/> of RAM (the process, the OS and any other silo of the
/// machine need the rest).
/// </summary>
public sealed record MemoryBudget(long? Bytes, double? Share)
{
    public const double DefaultGpuShare = 0.8;

    public const double DefaultRamShare = 0.5;

    private static readonly (string Suffix, long Factor)[] Units =
    [
        ("KiB", 1L << 10), ("MiB", 1L << 20), ("GiB", 1L << 30), ("TiB", 1L << 40),
        ("KB", 1_000L), ("MB", 1_000_000L), ("GB", 1_000_000_000L), ("TB", 1_000_000_000_000L),
        ("K", 1L << 10), ("M", 1L << 20), ("G", 1L << 30), ("T", 1L << 40),
        ("B", 1L),
    ];

    /// <summary>The budget in bytes on a device of <paramref name="deviceBytes"/>; a share of an unknown device is none (null).</summary>
    public long? Resolve(long? deviceBytes) => Bytes ?? (deviceBytes is { } total ? (long)(total * Share!.Value) : null);

    /// <summary>Parses the setting; null when it is not a size or a percentage in (0, 100].</summary>
    public static MemoryBudget? Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        var s = text.Trim();
        if (s.EndsWith('%'))
        {
            return double.TryParse(s[..^1].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var percent) && percent is > 0 and <= 100
                ? new MemoryBudget(null, percent / 100)
                : null;
        }

        var factor = 1L;
        foreach (var (suffix, f) in Units)
        {
            if (s.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                factor = f;
                s = s[..^suffix.Length].Trim();
                break;
            }
        }

        return double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value > 0 && value * factor < long.MaxValue
            ? new MemoryBudget((long)(value * factor), null)
            : null;
    }

    /// <summary>A size as people read it: <c>86.7 MiB</c>.</summary>
    public static string Describe(long bytes) => bytes switch
    {
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):0.##} GiB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):0.#} MiB"),
        >= 1L << 10 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 10):0.#} KiB"),
        _ => $"{bytes} bytes",
    };
}
