using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using OrleansGpu.Grains;

namespace OrleansGpu.Tests.Cluster;

/// <summary>
/// How many jobs a host admits: by default enough to fill the forward passes of its device (a few rounds of full
/// passes for each batcher worker, in requests of GPU_EMBED_BATCH texts); GPU_MAX_CONCURRENT, when set, wins.
/// </summary>
public sealed class HostAdmissionTests
{
    private static GpuHostOptions Read(params (string Key, string Value)[] settings) =>
        GpuHostOptions.FromConfiguration(new ConfigurationBuilder()
            .AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value)))
            .Build());

    [Fact]
    public void The_default_fills_the_passes_of_the_device_a_few_rounds_ahead()
    {
        var defaults = Read();

        // Passes of 256 texts on a GPU, 32 on the CPU; two workers; requests of 32 texts (GPU_EMBED_BATCH).
        var gpu = HostAdmission.Resolve(defaults, onGpu: true);
        Assert.Equal(HostAdmission.PassesAhead * 2 * 256 / 32, gpu.Value);
        Assert.Contains("GPU", gpu.Source);
        Assert.StartsWith("default", gpu.Source);
        var cpu = HostAdmission.Resolve(defaults, onGpu: false);
        Assert.Equal(HostAdmission.PassesAhead * 2 * 32 / 32, cpu.Value);
        Assert.Contains("CPU", cpu.Source);

        // The batch limits move it: fewer texts per pass, or a token budget that holds fewer short texts, admit fewer;
        // smaller requests admit more.
        Assert.Equal(HostAdmission.PassesAhead * 2 * 64 / 32, HostAdmission.Resolve(Read(("GPU_MAX_BATCH_SEQUENCES", "64")), onGpu: true).Value);
        Assert.Equal(HostAdmission.PassesAhead * 2 * (2048 / 32) / 32, HostAdmission.Resolve(Read(("GPU_MAX_BATCH_TOKENS", "2048")), onGpu: true).Value);
        Assert.Equal(HostAdmission.PassesAhead * 2 * 256 / 8, HostAdmission.Resolve(Read(("GPU_EMBED_BATCH", "8")), onGpu: true).Value);
        Assert.Equal(HostAdmission.PassesAhead * 3 * 256 / 32, HostAdmission.Resolve(defaults, onGpu: true, workers: 3).Value);

        // Never below the seed's 2, even when one request fills every pass.
        Assert.Equal(HostAdmission.Minimum, HostAdmission.Resolve(Read(("GPU_EMBED_BATCH", "2048")), onGpu: false).Value);
    }

    [Theory]
    [InlineData("GPU_MAX_CONCURRENT")]
    [InlineData("Gpu:MaxConcurrent")]
    public void The_seeds_variable_wins_when_set(string setting)
    {
        var options = Read((setting, "3"));
        Assert.Equal(new AdmissionLimit(3, "GPU_MAX_CONCURRENT"), HostAdmission.Resolve(options, onGpu: true));
        Assert.Equal(new AdmissionLimit(3, "GPU_MAX_CONCURRENT"), HostAdmission.Resolve(options, onGpu: false));
    }

    [Fact]
    public async Task A_host_admits_the_cpu_default_and_grows_to_the_gpu_default_once_a_model_runs_on_a_gpu()
    {
        var options = Read(("GPU_HOST_NAME", "h"), ("TORCH_DEVICE", "auto"));
        var jobs = new HostJobs(options, NullLogger<HostJobs>.Instance);
        var cpu = HostAdmission.Resolve(options, onGpu: false);
        var gpu = HostAdmission.Resolve(options, onGpu: true);
        Assert.Equal(cpu, jobs.Admission);
        Assert.Equal(cpu.Source, jobs.Status().MaxConcurrentSource);

        var ct = TestContext.Current.CancellationToken;
        var leases = new List<HostJobs.JobLease>();
        for (var i = 0; i < cpu.Value; i++)
        {
            leases.Add(await jobs.AdmitAsync("embed", "m", 1, 1, null, ct));
        }

        // The next one waits for a slot ...
        var waiting = jobs.AdmitAsync("embed", "m", 1, 1, null, ct);
        Assert.False(waiting.IsCompleted);
        Assert.Equal(1, jobs.Load("cpu").QueuedJobs);

        // ... until the host learns that its models run on a GPU: then it admits the GPU's default.
        jobs.UseDevice(onGpu: false);
        Assert.False(waiting.IsCompleted);
        jobs.UseDevice(onGpu: true);
        leases.Add(await waiting);
        Assert.Equal(gpu, jobs.Admission);
        Assert.Equal(gpu.Value, jobs.Load("cuda:0").MaxConcurrent);
        Assert.Equal(gpu.Source, jobs.Status().MaxConcurrentSource);
        while (leases.Count < gpu.Value)
        {
            leases.Add(await jobs.AdmitAsync("embed", "m", 1, 1, null, ct));
        }

        var beyond = jobs.AdmitAsync("embed", "m", 1, 1, null, ct);
        Assert.False(beyond.IsCompleted);
        leases.ForEach(l => l.Dispose());
        (await beyond).Dispose();
        Assert.Equal(0, jobs.Count);
    }

    [Fact]
    public async Task A_host_with_GPU_MAX_CONCURRENT_keeps_it_on_a_gpu()
    {
        var jobs = new HostJobs(Read(("GPU_HOST_NAME", "h"), ("GPU_MAX_CONCURRENT", "2")), NullLogger<HostJobs>.Instance);
        var ct = TestContext.Current.CancellationToken;
        using var first = await jobs.AdmitAsync("embed", "m", 1, 1, null, ct);
        using var second = await jobs.AdmitAsync("embed", "m", 1, 1, null, ct);
        jobs.UseDevice(onGpu: true);
        var third = jobs.AdmitAsync("embed", "m", 1, 1, null, ct);
        Assert.False(third.IsCompleted);
        Assert.Equal(new AdmissionLimit(2, "GPU_MAX_CONCURRENT"), jobs.Admission);
        first.Dispose();
        (await third).Dispose();
    }
}
