using System.Reflection;
using Orleans.Concurrency;
using OrleansGpu.Grains.Placement;
using OrleansGpu.Inference.Models;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Grains;

/// <summary>
/// The GPU host of one silo. Thin: it finds the requested model (no grain is activated for a name that resolves to
/// nothing) and has its model grain ready it (load, download first if need be) before the job takes a slot, so a
/// download holds none; then it admits the work through the silo's job table (at most GPU_MAX_CONCURRENT at once, by default
/// as many as fill the device's passes, see <see cref="HostAdmission"/>; a bounded queue behind), hands it to the model grain, and reports load, status (downloads included) and device.
/// Reentrant, so that status and load answer while jobs run.
/// </summary>
[Reentrant]
[SiloKeyedPlacement]
public sealed class GpuHostGrain(
    HostJobs jobs, HostModels models, HostMemory memory, ModelSources sources, HostHardware hardware, EncoderOptions encoderOptions, IGrainFactory grains, HostModelFaults faults,
    HostPrecision precisions)
    : Grain, IGpuHostGrain
{
    private static readonly string Version =
        typeof(GpuHostGrain).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    private string Host => this.GetPrimaryKeyString();

    public async Task<EmbeddingBatch> EmbedAsync(EmbedWork work, CancellationToken cancellationToken)
    {
        using var model = await ReadyAsync(work.Model, ModelUse.Embedding, work.Precision, cancellationToken);
        using var lease = await jobs.AdmitAsync("embed", work.Model, work.Texts.Count, WorkSize.Tokens(work.Texts), work.Part, cancellationToken);
        return await model.Grain.EmbedAsync(work, lease.JobId, cancellationToken);
    }

    public async Task<BertScoreScores> BertScoreAsync(BertScoreWork work, CancellationToken cancellationToken)
    {
        var tokens = WorkSize.Tokens(work.Candidates) + work.References.Sum(WorkSize.Tokens);
        using var model = await ReadyAsync(work.Model, ModelUse.BertScore, work.Precision, cancellationToken);
        using var lease = await jobs.AdmitAsync("bertscore", work.Model, work.Candidates.Count, tokens, work.Part, cancellationToken);
        return await model.Grain.BertScoreAsync(work, lease.JobId, cancellationToken);
    }

    public async Task<IdfTable> BertScoreIdfAsync(IdfWork work, CancellationToken cancellationToken)
    {
        using var model = await ReadyAsync(work.Model, ModelUse.BertScore, work.Precision, cancellationToken);
        return await model.Grain.BertScoreIdfAsync(work, cancellationToken);
    }

    public Task<HostLoad> GetLoadAsync() =>
        Task.FromResult(jobs.Load(hardware.Snapshot.Expected(encoderOptions.Device)) with
        {
            Models = models.Describe(precisions.RunsIn),
            Faults = faults.Describe(models.AliasesOf),
            MemoryBudgetBytes = memory.KnownBudget,
        });

    public async Task<HostInfo> GetInfoAsync()
    {
        var loaded = new List<ModelDescription>();
        foreach (var name in models.Loaded)
        {
            if (await grains.GetGrain<IModelGrain>(Key(name)).DescribeAsync() is { } description)
            {
                loaded.Add(description);
            }
        }

        // The hardware is probed off this turn (HostHardware); a hung nvidia-smi never holds up the grain.
        var snapshot = hardware.Snapshot;
        var provider = loaded.FirstOrDefault()?.Provider
            ?? (snapshot.Expected(encoderOptions.Device) == "cpu" ? "CPU" : $"CUDA:{encoderOptions.Device.DeviceId}");
        var (device, deviceName, total, used, cuda) = snapshot.Describe(provider);
        return new HostInfo(Host, device, deviceName, total, used, cuda, loaded, Version, memory.Describe());
    }

    public Task<HostInfo> GetState() => GetInfoAsync();

    public Task<HostStatus> GetStatusAsync()
    {
        var status = jobs.Status();
        var downloads = sources.Downloads;
        if (downloads.Count == 0)
        {
            return Task.FromResult(status);
        }

        // Downloads show as jobs of their own, with bytes done of bytes total.
        var shown = downloads.Select(d => new JobStatus(
            d.Id, "download", d.StartedAt, d.Files, d.Model,
            d.BytesTotal == 0 ? 0 : Math.Round((double)d.BytesDone / d.BytesTotal, 4), "downloading", d.BytesDone, d.BytesTotal));
        return Task.FromResult(status with { Jobs = [.. status.Jobs, .. shown] });
    }

    public async Task<IReadOnlyList<ModelProblem>> WarmAsync(IReadOnlyList<WarmRequest> models)
    {
        var problems = new List<ModelProblem>();
        foreach (var request in models)
        {
            try
            {
                using var ready = await ReadyAsync(request.Model, request.Use, request.Precision, CancellationToken.None);
            }
            catch (Exception ex)
            {
                problems.Add(new ModelProblem(request.Model, ex.Message));
            }
        }

        return problems;
    }

    /// <summary>
    /// The model grain of the requested model, loaded for <paramref name="use"/> in <paramref name="precision"/> (downloaded
    /// first when it must be), and marked in use until the result is disposed: the host's memory unloads no model with
    /// work in flight.
    /// </summary>
    private async Task<ReadyModel> ReadyAsync(string requested, ModelUse use, string? precision, CancellationToken cancellationToken)
    {
        var canonical = await models.CanonicalAsync(requested, cancellationToken);
        var inUse = memory.Use(canonical);
        try
        {
            var grain = grains.GetGrain<IModelGrain>(Key(canonical));
            // The precision the load is tracked in is the one the model grain will run: the host's decision, reported to the fronts.
            var runs = await precisions.RunsInAsync(canonical, precision);
            var loaded = await models.TrackLoadAsync(canonical, use, () => precisions.IsFp16Unavailable(canonical) ? Precisions.Fp32 : runs, () => grain.LoadAsync(use, precision));

            // Only a loaded session knows whether CUDA works (TORCH_DEVICE=auto); the default admission follows it.
            jobs.UseDevice(loaded.Provider.StartsWith("CUDA", StringComparison.Ordinal));
            return new ReadyModel(grain, inUse);
        }
        catch
        {
            inUse.Dispose();
            throw;
        }
    }

    private sealed class ReadyModel(IModelGrain grain, IDisposable inUse) : IDisposable
    {
        public IModelGrain Grain { get; } = grain;

        public void Dispose() => inUse.Dispose();
    }

    private string Key(string canonical) => $"{Host}/{canonical}";
}
