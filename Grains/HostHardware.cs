using System.Diagnostics;
using System.Globalization;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Grains;

/// <summary>What the host's device is: name, memory and CUDA version, read from <c>nvidia-smi</c> when present.</summary>
public static class HostHardware
{
    /// <summary>Describes the device a model runs on (<paramref name="provider"/> is <c>CUDA:N</c> or <c>CPU</c>).</summary>
    public static (string Device, string Name, long? VramTotalMb, long? VramUsedMb, string? CudaVersion) Describe(string provider)
    {
        if (provider.StartsWith("CUDA", StringComparison.Ordinal))
        {
            var id = provider.Split(':') is [_, var n] ? n : "0";
            var query = Run("nvidia-smi", $"--query-gpu=name,memory.total,memory.used,driver_version --format=csv,noheader,nounits -i {id}");
            var header = Run("nvidia-smi", string.Empty);
            string? cuda = null;
            if (header is not null)
            {
                var at = header.IndexOf("CUDA Version:", StringComparison.Ordinal);
                if (at >= 0)
                {
                    cuda = header[(at + 13)..].Trim().Split(' ', '|')[0].Trim();
                }
            }

            if (query?.Split(',').Select(s => s.Trim()).ToArray() is [var name, var total, var used, ..])
            {
                return ($"cuda:{id}", name, ParseLong(total), ParseLong(used), cuda);
            }

            return ($"cuda:{id}", "NVIDIA GPU", null, null, cuda);
        }

        return ("cpu", CpuName(), null, null, null);
    }

    // Asked once per process: the load report reads it every second.
    private static readonly Lazy<bool> GpuPresent = new(() => Run("nvidia-smi", "-L") is { Length: > 0 });

    /// <summary>The device the setting will give: <c>cuda:N</c> when a GPU is present (or forced), else <c>cpu</c>.</summary>
    public static string Expected(ExecutionDevice setting) => setting.Kind switch
    {
        ExecutionDeviceKind.Cpu => "cpu",
        ExecutionDeviceKind.Cuda => $"cuda:{setting.DeviceId}",
        _ => GpuPresent.Value ? "cuda:0" : "cpu",
    };

    private static string CpuName()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line?.Split(':', 2)[1].Trim() ?? $"{Environment.ProcessorCount} CPU cores";
        }
        catch (IOException)
        {
            return $"{Environment.ProcessorCount} CPU cores";
        }
    }

    private static long? ParseLong(string s) => long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;

    private static string? Run(string file, string arguments)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(file, arguments)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            });
            if (process is null)
            {
                return null;
            }

            var output = process.StandardOutput.ReadToEnd();
            return process.WaitForExit(3000) && process.ExitCode == 0 ? output : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // not installed
        }
    }
}
