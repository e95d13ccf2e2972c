using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Orleans.TestingHost;
using OrleansGpu.Grains;
using OrleansGpu.Grains.Hosting;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Cluster;

/// <summary>
/// The hardware probe runs off the grains' turns with a real timeout. No GPU here, so <c>nvidia-smi</c> is stood in
/// for by a script that hangs, as a hung driver would.
/// </summary>
public sealed class HostHardwareTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("hung-probe-").FullName;

    private string PidFile => Path.Combine(_folder, "pids");

    /// <summary>A stand-in for nvidia-smi that records its process id and never answers.</summary>
    private string HangingProbe()
    {
        var script = Path.Combine(_folder, "nvidia-smi");
        File.WriteAllText(script, $"#!/bin/sh\necho $$ >> '{PidFile}'\nexec sleep 600\n");
        Assert.SkipUnless(OperatingSystem.IsLinux(), "the stand-in probe is a shell script");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        return script;
    }

    private int[] ProbePids() => File.Exists(PidFile) ? [.. File.ReadAllLines(PidFile).Where(l => l.Length > 0).Select(int.Parse)] : [];

    private static bool Running(int pid) => File.Exists($"/proc/{pid}/cmdline") && File.ReadAllText($"/proc/{pid}/cmdline").Contains("sleep", StringComparison.Ordinal);

    [Fact]
    public async Task A_hung_probe_is_killed_at_its_timeout_and_the_host_reads_as_having_no_gpu()
    {
        var options = new GpuHostOptions { Device = "auto", HardwareProbeTimeout = TimeSpan.FromSeconds(1), NvidiaSmi = HangingProbe() };
        using var hardware = new HostHardware(Options.Create(options), NullLogger<HostHardware>.Instance);

        var watch = Stopwatch.StartNew();
        await hardware.StartAsync(TestContext.Current.CancellationToken);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(0.5), $"the start waited {watch.Elapsed} on the probe");
        await hardware.FirstProbe.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        watch.Stop();
        await hardware.StopAsync(TestContext.Current.CancellationToken);

        Assert.InRange(watch.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(10));
        var pid = Assert.Single(ProbePids());
        Assert.False(Running(pid), $"the hung probe {pid} is still running");
        Assert.Empty(hardware.Snapshot.Gpus);
        Assert.Equal("cpu", hardware.Snapshot.Expected(OrleansGpu.Inference.Onnx.ExecutionDevice.Auto));
    }

    [Fact]
    public async Task Info_load_and_embed_answer_while_the_probe_hangs()
    {
        var ct = TestContext.Current.CancellationToken;
        using var models = new TestModelsFolder();
        var probe = HangingProbe();
        var builder = new InProcessTestClusterBuilder(1);
        builder.ConfigureSilo((silo, siloBuilder) => siloBuilder.AddGpuHost(o =>
        {
            o.HostName = silo.SiloName;
            o.ModelsDirectory = models.Directory;
            o.Device = "auto";
            o.WarmDefaults = false;
            o.NvidiaSmi = probe;
            o.HardwareProbeTimeout = TimeSpan.FromSeconds(20);
            o.HardwareProbeInterval = TimeSpan.FromMilliseconds(100);
        }));
        await using var cluster = builder.Build();
        await cluster.DeployAsync();
        var host = cluster.GetActiveSilos().Single().SiloAddress.ToString();
        var name = cluster.GetActiveSilos().Single().Name;
        var grain = cluster.Client.GetGrain<IGpuHostGrain>(name);

        // The probe hangs now, while the grain is called.
        await WaitUntil(() => ProbePids().Length >= 1 && Running(ProbePids()[^1]));
        var hung = ProbePids()[^1];

        var watch = Stopwatch.StartNew();
        var info = await grain.GetInfoAsync().WaitAsync(TimeSpan.FromSeconds(10), ct);
        var load = await grain.GetLoadAsync().WaitAsync(TimeSpan.FromSeconds(10), ct);
        var problems = await grain.WarmAsync([new WarmRequest("all-MiniLM-L6-v2", ModelUse.Embedding)]).WaitAsync(TimeSpan.FromSeconds(60), ct);
        var batch = await grain.EmbedAsync(new EmbedWork("all-MiniLM-L6-v2", ["still served"]), ct).WaitAsync(TimeSpan.FromSeconds(60), ct);
        var again = await grain.GetInfoAsync().WaitAsync(TimeSpan.FromSeconds(10), ct);
        watch.Stop();

        Assert.True(Running(hung), $"the probe {hung} should still hang while the calls ran ({host})");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"the calls took {watch.Elapsed}, as long as the probe's timeout");
        Assert.Equal("cpu", info.Device);
        Assert.Equal("cpu", load.Device);
        Assert.Empty(problems);
        Assert.Equal(384, batch.Dimensions);
        Assert.Contains(again.LoadedModels, m => m.Embedding);
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached in 60 s");
            await Task.Delay(50);
        }
    }

    public void Dispose()
    {
        foreach (var pid in ProbePids())
        {
            try
            {
                Process.GetProcessById(pid).Kill();
            }
            catch (ArgumentException)
            {
            }
            catch (InvalidOperationException)
            {
            }
        }

        Directory.Delete(_folder, true);
    }
}
