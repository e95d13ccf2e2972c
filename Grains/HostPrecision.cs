using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Grains;

/// <summary>
/// <c>GPU_PRECISION</c>: a default precision for every model (<c>fp16</c>), one per model (<c>all-MiniLM-L6-v2=fp16</c>,
/// comma-separated), or both (<c>fp16,microsoft/deberta-xlarge-mnli=fp32</c>). A model entry matches the model's
/// canonical name or its last part(s) (<c>all-MiniLM-L6-v2</c> matches <c>sentence-transformers/all-MiniLM-L6-v2</c>);
/// models no entry names get the bare value, or fp32.
/// </summary>
public sealed class PrecisionSetting
{
    private readonly string _default;
    private readonly IReadOnlyList<(string Model, string Precision)> _models;

    private PrecisionSetting(string @default, IReadOnlyList<(string, string)> models)
    {
        _default = @default;
        _models = models;
    }

    /// <summary>Reads the setting; throws <see cref="ArgumentException"/> naming what is wrong (see <see cref="Error"/>).</summary>
    public static PrecisionSetting Parse(string? setting)
    {
        string? bare = null;
        var models = new List<(string, string)>();
        foreach (var entry in (setting ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var at = entry.LastIndexOf('=');
            var value = (at < 0 ? entry : entry[(at + 1)..]).Trim().ToLowerInvariant();
            if (!Precisions.IsKnown(value))
            {
                throw new ArgumentException($"'{entry}' names no precision; use {string.Join(" or ", Precisions.All)}, for every model or as model=precision.");
            }

            if (at < 0)
            {
                bare = bare is null ? value : throw new ArgumentException($"two precisions for every model ('{bare}' and '{value}'); give one, and model=precision for the others.");
            }
            else if (entry[..at].Trim() is { Length: > 0 } model)
            {
                models.Add((model, value));
            }
            else
            {
                throw new ArgumentException($"'{entry}' names no model before '='.");
            }
        }

        return new PrecisionSetting(bare ?? Precisions.Fp32, models);
    }

    /// <summary>What is wrong with the setting, or null when it reads.</summary>
    public static string? Error(string? setting)
    {
        try
        {
            Parse(setting);
            return null;
        }
        catch (ArgumentException ex)
        {
            return ex.Message;
        }
    }

    /// <summary>The precision of a request for <paramref name="canonical"/> that names none.</summary>
    public string For(string canonical) =>
        _models.FirstOrDefault(m => Names(canonical, m.Model)).Precision ?? _default;

    private static bool Names(string canonical, string entry) =>
        string.Equals(canonical, entry, StringComparison.OrdinalIgnoreCase)
        || canonical.EndsWith("/" + entry, StringComparison.OrdinalIgnoreCase);
}

/// <summary>
/// Which precision a request gets on this host: the one it names, else the host's default for the model
/// (<see cref="GpuHostOptions.Precision"/>); and whether fp16 runs here at all. fp16 runs where the sessions run on
/// CUDA (the device set to <c>cuda</c>, or <c>auto</c> with a GPU found), or anywhere with
/// <see cref="GpuHostOptions.Fp16OnCpu"/>; elsewhere an fp16 request is answered in fp32, and the answer says so.
/// </summary>
public sealed class HostPrecision(GpuHostOptions options, HostHardware hardware, ILogger<HostPrecision> logger)
{
    private readonly PrecisionSetting _setting = PrecisionSetting.Parse(options.Precision);
    private readonly ExecutionDevice _device = ExecutionDevice.Parse(options.Device);
    private readonly ConcurrentDictionary<string, byte> _fp16Unavailable = new(StringComparer.Ordinal);
    private int _fallbackLogged;

    /// <summary>The precision asked for: <paramref name="requested"/> when given, else the host's default for the model.</summary>
    public string Wanted(string canonical, string? requested) => requested ?? _setting.For(canonical);

    /// <summary>Whether fp16 graphs are opened on this host (see the class).</summary>
    public async Task<bool> RunsFp16Async()
    {
        if (options.Fp16OnCpu || _device.Kind == ExecutionDeviceKind.Cuda)
        {
            return true;
        }

        if (_device.Kind == ExecutionDeviceKind.Cpu)
        {
            return false;
        }

        // auto: CUDA when the hardware probe finds a GPU. A request at start waits for the first probe (bounded by its timeout).
        await hardware.FirstProbe.WaitAsync(options.HardwareProbeTimeout + TimeSpan.FromSeconds(1)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        return hardware.Snapshot.Gpus.Count > 0;
    }

    /// <summary>
    /// Whether fp16 runs here, without waiting: null on an <c>auto</c> device until the first hardware probe has answered
    /// (a load report must not wait for it).
    /// </summary>
    private bool? RunsFp16Now => options.Fp16OnCpu || _device.Kind == ExecutionDeviceKind.Cuda ? true
        : _device.Kind == ExecutionDeviceKind.Cpu ? false
        : hardware.FirstProbe.IsCompleted ? hardware.Snapshot.Gpus.Count > 0
        : null;

    /// <summary>
    /// The precision (<see cref="Precisions"/>) a request for <paramref name="canonical"/> asking for
    /// <paramref name="requested"/> (null: none) runs in here, as the fronts' routing reads it from the load report
    /// (<see cref="HostModel.RunsIn"/>); null while it is not known whether fp16 runs here.
    /// </summary>
    public string? RunsIn(string canonical, string? requested) =>
        Wanted(canonical, requested) != Precisions.Fp16 || IsFp16Unavailable(canonical) ? Precisions.Fp32
        : RunsFp16Now switch { true => Precisions.Fp16, false => Precisions.Fp32, null => null };

    /// <summary>The precision a request for <paramref name="canonical"/> asking for <paramref name="requested"/> runs in here (waits for the first hardware probe when it must).</summary>
    public async Task<string> RunsInAsync(string canonical, string? requested) =>
        IsFp16Unavailable(canonical) || await GraphPrecisionAsync(canonical, Wanted(canonical, requested)) != GraphPrecision.Fp16 ? Precisions.Fp32 : Precisions.Fp16;

    /// <summary>
    /// The model's fp16 graph cannot be had (an export the builder cannot convert): its fp16 requests are served in fp32
    /// until its grain goes (<paramref name="unavailable"/> false then: a new activation tries again).
    /// </summary>
    public void SetFp16Unavailable(string canonical, bool unavailable)
    {
        if (unavailable)
        {
            _fp16Unavailable.TryAdd(canonical, 0);
        }
        else
        {
            _fp16Unavailable.TryRemove(canonical, out _);
        }
    }

    public bool IsFp16Unavailable(string canonical) => _fp16Unavailable.ContainsKey(canonical);

    /// <summary>The graph precision that serves <paramref name="precision"/> on this host.</summary>
    public async Task<GraphPrecision> GraphPrecisionAsync(string model, string precision)
    {
        if (precision != Precisions.Fp16)
        {
            return GraphPrecision.Fp32;
        }

        if (await RunsFp16Async())
        {
            return GraphPrecision.Fp16;
        }

        if (Interlocked.Exchange(ref _fallbackLogged, 1) == 0)
        {
            logger.LogInformation(
                "fp16 was asked for ({Model}) but this host runs on the CPU, where ONNX Runtime has few float16 kernels: fp16 requests are answered in fp32 (GPU_FP16_ON_CPU=true runs the fp16 graph anyway)",
                model);
        }

        return GraphPrecision.Fp32;
    }
}
