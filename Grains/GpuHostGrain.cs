using System.Reflection;
using Orleans.Concurrency;
using OrleansGpu.Grains.Placement;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Grains;

/// <summary>
/// The GPU host of one silo. Thin: it admits work through the silo's job table (at most GPU_MAX_CONCURRENT at once,
/// a bounded queue behind), hands it to the model grain of the same host, and reports load, status and device.
/// Reentrant, so that status and load answer while jobs run.
/// </summary>
[Reentrant]
[SiloKeyedPlacement]
public sealed class GpuHostGrain(HostJobs jobs, HostModels models, HostHardware hardware, EncoderOptions encoderOptions, IGrainFactory grains)
    : Grain, IGpuHostGrain
{
    private static readonly string Version =
        typeof(GpuHostGrain).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    private string Host => this.GetPrimaryKeyString();

    public async Task<EmbeddingBatch> EmbedAsync(EmbedWork work, CancellationToken cancellationToken)
    {
        using var lease = await jobs.AdmitAsync("embed", work.Model, work.Texts.Count, WorkSize.Tokens(work.Texts), work.Part, cancellationToken);
        return await Model(work.Model).EmbedAsync(work, lease.JobId, cancellationToken);
    }

    public async Task<BertScoreScores> BertScoreAsync(BertScoreWork work, CancellationToken cancellationToken)
    {
        var tokens = WorkSize.Tokens(work.Candidates) + work.References.Sum(WorkSize.Tokens);
        using var lease = await jobs.AdmitAsync("bertscore", work.Model, work.Candidates.Count, tokens, work.Part, cancellationToken);
        return await Model(work.Model).BertScoreAsync(work, lease.JobId, cancellationToken);
    }

    public Task<IdfTable> BertScoreIdfAsync(IdfWork work, CancellationToken cancellationToken) =>
        Model(work.Model).BertScoreIdfAsync(work, cancellationToken);

    public Task<HostLoad> GetLoadAsync() => Task.FromResult(jobs.Load(hardware.Snapshot.Expected(encoderOptions.Device)));

    public async Task<HostInfo> GetInfoAsync()
    {
        var loaded = new List<ModelDescription>();
        foreach (var name in models.Asked)
        {
            if (await Model(name).DescribeAsync() is { } description)
            {
                loaded.Add(description);
            }
        }

        // The hardware is probed off this turn (HostHardware); a hung nvidia-smi never holds up the grain.
        var snapshot = hardware.Snapshot;
        var provider = loaded.FirstOrDefault()?.Provider
            ?? (snapshot.Expected(encoderOptions.Device) == "cpu" ? "CPU" : $"CUDA:{encoderOptions.Device.DeviceId}");
        var (device, deviceName, total, used, cuda) = snapshot.Describe(provider);
        return new HostInfo(Host, device, deviceName, total, used, cuda, loaded, Version);
    }

    public Task<HostStatus> GetStatusAsync() => Task.FromResult(jobs.Status());

    public async Task<IReadOnlyList<ModelProblem>> WarmAsync(IReadOnlyList<WarmRequest> models)
    {
        var problems = new List<ModelProblem>();
        foreach (var request in models)
        {
            try
            {
                await Model(request.Model).LoadAsync(request.Use);
            }
            catch (Exception ex)
            {
                problems.Add(new ModelProblem(request.Model, ex.Message));
            }
        }

        return problems;
    }

    private IModelGrain Model(string name) => grains.GetGrain<IModelGrain>($"{Host}/{models.Canonical(name)}");
}
