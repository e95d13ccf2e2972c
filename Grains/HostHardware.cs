using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Grains;

/// <summary>One GPU as <c>nvidia-smi</c> reported it.</summary>
public sealed record GpuDevice(int Index, string Name, long? VramTotalMb, long? VramUsedMb);

/// <summary>What the host's hardware was at the last probe: its GPUs (none when there are none or the probe failed) and CPU.</summary>
public sealed record HardwareSnapshot(IReadOnlyList<GpuDevice> Gpus, string? CudaVersion, string CpuName, DateTimeOffset? ProbedAt)
{
    public static HardwareSnapshot Unprobed { get; } = new([], null, ReadCpuName(), null);

    /// <summary>The device the setting will give: <c>cuda:N</c> when a GPU is present (or forced), else <c>cpu</c>.</summary>
    public string Expected(ExecutionDevice setting) => setting.Kind switch
    {
        ExecutionDeviceKind.Cpu => "cpu",
        ExecutionDeviceKind.Cuda => $"cuda:{setting.DeviceId}",
        _ => Gpus.Count > 0 ? "cuda:0" : "cpu",
    };

    /// <summary>Describes the device a model runs on (<paramref name="provider"/> is <c>CUDA:N</c> or <c>CPU</c>).</summary>
    public (string Device, string Name, long? VramTotalMb, long? VramUsedMb, string? CudaVersion) Describe(string provider)
    {
        if (!provider.StartsWith("CUDA", StringComparison.Ordinal))
        {
            return ("cpu", CpuName, null, null, null);
        }

        var id = provider.Split(':') is [_, var n] && int.TryParse(n, CultureInfo.InvariantCulture, out var parsed) ? parsed : 0;
        return Gpus.FirstOrDefault(g => g.Index == id) is { } gpu
            ? ($"cuda:{id}", gpu.Name, gpu.VramTotalMb, gpu.VramUsedMb, CudaVersion)
            : ($"cuda:{id}", "NVIDIA GPU", null, null, CudaVersion);
    }

    private static string ReadCpuName()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line?.Split(':', 2)[1].Trim() ?? $"{Environment.ProcessorCount} CPU cores";
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"{Environment.ProcessorCount} CPU cores";
        }
    }
}

/// <summary>
/// Probes the host's GPUs with <c>nvidia-smi</c> in the background (a hosted service of the silo) and keeps the last
/// <see cref="Snapshot"/>, which grains read without waiting. A probe that outlives
/// <see cref="GpuHostOptions.HardwareProbeTimeout"/> is killed, so a hung driver slows nothing but this probe.
/// With the device set to <c>cpu</c> nothing is probed. Until the first probe answers, the host reads as having no GPU.
/// </summary>
public sealed class HostHardware(IOptions<GpuHostOptions> options, ILogger<HostHardware> logger) : IHostedService, IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private volatile HardwareSnapshot _snapshot = HardwareSnapshot.Unprobed;
    private Task _loop = Task.CompletedTask;
    private bool _timeoutLogged;

    public HardwareSnapshot Snapshot => _snapshot;

    /// <summary>Starts probing in the background, at once and then every interval; the start never waits on a probe.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (ExecutionDevice.Parse(options.Value.Device).Kind != ExecutionDeviceKind.Cpu)
        {
            _loop = Task.Run(() => LoopAsync(_stop.Token), CancellationToken.None);
        }

        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stop.CancelAsync();
        await _loop.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    /// <summary>Completes after the first probe has ended (answered, failed or timed out).</summary>
    internal Task FirstProbe => _firstProbe.Task;

    private readonly TaskCompletionSource _firstProbe = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private async Task LoopAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await ProbeAsync(stop);
                _firstProbe.TrySetResult();
                await Task.Delay(options.Value.HardwareProbeInterval, stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // A probe must never end the loop: the snapshot stays as last read.
                _firstProbe.TrySetResult();
                logger.LogDebug(ex, "Probing the hardware failed");
            }
        }
    }

    private async Task ProbeAsync(CancellationToken cancellationToken)
    {
        var query = await RunAsync("--query-gpu=index,name,memory.total,memory.used --format=csv,noheader,nounits", cancellationToken);
        if (query is null)
        {
            return; // keep the last snapshot
        }

        var gpus = new List<GpuDevice>();
        foreach (var line in query.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (line.Split(',').Select(s => s.Trim()).ToArray() is [var index, var name, var total, var used, ..]
                && int.TryParse(index, CultureInfo.InvariantCulture, out var i))
            {
                gpus.Add(new GpuDevice(i, name, ParseLong(total), ParseLong(used)));
            }
        }

        // The CUDA version the driver supports is printed only in nvidia-smi's header; it does not change while we run.
        var cuda = _snapshot.CudaVersion;
        if (cuda is null && gpus.Count > 0 && await RunAsync(string.Empty, cancellationToken) is { } header)
        {
            var at = header.IndexOf("CUDA Version:", StringComparison.Ordinal);
            cuda = at < 0 ? null : header[(at + 13)..].Trim().Split(' ', '|')[0].Trim();
        }

        _snapshot = _snapshot with { Gpus = gpus, CudaVersion = cuda, ProbedAt = DateTimeOffset.UtcNow };
    }

    /// <summary>Runs the probe program; its output, or null when it is missing, fails, or outlives the timeout (then it is killed).</summary>
    private async Task<string?> RunAsync(string arguments, CancellationToken cancellationToken)
    {
        Process? process;
        try
        {
            process = Process.Start(new ProcessStartInfo(options.Value.NvidiaSmi, arguments)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            });
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // not installed: no NVIDIA GPU here
        }

        if (process is null)
        {
            return null;
        }

        using (process)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(options.Value.HardwareProbeTimeout);
            try
            {
                // Both pipes are drained while waiting, so neither a full pipe nor a silent hang can outlast the timeout.
                var output = process.StandardOutput.ReadToEndAsync(timeout.Token);
                var errors = process.StandardError.ReadToEndAsync(timeout.Token);
                await process.WaitForExitAsync(timeout.Token);
                var text = await output;
                await errors;
                return process.ExitCode == 0 ? text : null;
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                if (!cancellationToken.IsCancellationRequested && !_timeoutLogged)
                {
                    _timeoutLogged = true;
                    logger.LogWarning(
                        "{Program} did not answer within {Timeout}; it was killed, and /info shows the device as last probed",
                        options.Value.NvidiaSmi, options.Value.HardwareProbeTimeout);
                }

                return null;
            }
        }
    }

    /// <summary>
    /// The used memory of GPU <paramref name="index"/> in bytes, read now (not from the snapshot): what a model's load is
    /// measured by. Null when nvidia-smi is missing, fails or hangs.
    /// </summary>
    public async Task<long?> ReadUsedBytesAsync(int index, CancellationToken cancellationToken)
    {
        var output = await RunAsync($"--query-gpu=memory.used --format=csv,noheader,nounits --id={index}", cancellationToken);
        return output is not null && ParseLong(output.Trim()) is { } mib ? mib * (1L << 20) : null;
    }

    private static long? ParseLong(string s) => long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;

    public void Dispose() => _stop.Dispose();
}
