using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using OrleansGpu.Grains;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Tests.Cluster;

/// <summary>
/// The budget on a CUDA host: a share of the GPU's memory as nvidia-smi reports it, and a load measured by the GPU's
/// used memory. No GPU here, so nvidia-smi is stood in for by a script that reports a 1000 MiB GPU.
/// </summary>
public sealed class HostMemoryGpuBudgetTests : IDisposable
{
    private const long MiB = 1L << 20;

    private readonly string _folder = Directory.CreateTempSubdirectory("gpu-budget-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Theory]
    [InlineData(null, 800)]
    [InlineData("50%", 500)]
    [InlineData("300MiB", 300)]
    public async Task The_budget_is_a_share_of_the_gpus_memory_stand_in_nvidia_smi(string? setting, long expectedMiB)
    {
        var ct = TestContext.Current.CancellationToken;
        var (hardware, memory) = await StartAsync(setting, ct);
        using (hardware)
        using (memory)
        {
            // The budget is known once the probe has answered (until then: none, and no load waits for it).
            await hardware.FirstProbe.WaitAsync(TimeSpan.FromSeconds(30), ct);
            using (var turn = await memory.BeginLoadAsync("m/small", 100 * MiB, ct))
            {
                await turn.CompleteAsync();
            }

            Assert.Equal(expectedMiB * MiB, memory.Budget);

            // Each CUDA session's arena is held to the budget, so that a pass larger than it is split, not let grow.
            Assert.Equal(expectedMiB * MiB, memory.KnownBudget);
            Assert.Equal((expectedMiB * MiB).ToString(System.Globalization.CultureInfo.InvariantCulture),
                OnnxEncoder.CudaProviderOptions(new EncoderOptions { Device = ExecutionDevice.Cuda(), GpuMemoryLimit = memory.KnownBudget })["gpu_mem_limit"]);

            // The stand-in's used memory does not move, so the load counts its weights.
            Assert.Equal(100 * MiB, Assert.Single(memory.Describe().Models).Bytes);
            var error = await Assert.ThrowsAsync<InvalidWorkException>(() => memory.BeginLoadAsync("m/large", (expectedMiB + 1) * MiB, ct));
            Assert.Equal(ErrorCodes.ModelTooLarge, error.Code);
            Assert.Contains($"{expectedMiB * MiB} bytes", error.Message);
            await hardware.StopAsync(ct);
        }
    }

    private async Task<(HostHardware Hardware, HostMemory Memory)> StartAsync(string? setting, CancellationToken ct)
    {
        var script = Path.Combine(_folder, "nvidia-smi");
        File.WriteAllText(script, """
            #!/bin/sh
            case "$*" in
              *index,name*) echo "0, Stand-in GPU, 1000, 100" ;;
              *memory.used*) echo "100" ;;
              *) echo "| NVIDIA-SMI 550.54   Driver Version: 550.54   CUDA Version: 12.4 |" ;;
            esac
            """.Replace("\r", string.Empty, StringComparison.Ordinal) + "\n");
        Assert.SkipUnless(OperatingSystem.IsLinux(), "the stand-in probe is a shell script");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        var options = new GpuHostOptions { HostName = "gpu-budget", Device = "auto", MemoryBudget = setting, NvidiaSmi = script };
        var hardware = new HostHardware(Options.Create(options), NullLogger<HostHardware>.Instance);
        await hardware.StartAsync(ct);

        // Nothing here is unloaded, so no grain is called: the host's memory needs no cluster.
        var memory = new HostMemory(options, hardware, new EncoderOptions { Device = ExecutionDevice.Auto }, grains: null!, NullLogger<HostMemory>.Instance);
        return (hardware, memory);
    }
}
