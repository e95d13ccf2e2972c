using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansGpu.Grains.Hosting;
using OrleansGpu.Inference.Models;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Grains;

/// <summary>
/// Settings of one GPU host (section <c>Gpu</c>). Where the seed service had an environment variable for a setting,
/// that variable is kept and wins (<see cref="Aliases"/>), so that the seed's users can switch without changes.
/// Checked when the host starts (<see cref="GpuHostOptionsValidator"/>): a bad value stops the start, naming it.
/// </summary>
public sealed class GpuHostOptions
{
    public const string Section = "Gpu";

    /// <summary>The environment variables of the settings that have one.</summary>
    public static IReadOnlyList<SettingAlias> Aliases { get; } =
    [
        new("GPU_HOST_NAME", nameof(HostName)),
        new("GPU_MAX_CONCURRENT", nameof(MaxConcurrent)),
        new("GPU_MAX_QUEUE", nameof(MaxQueued)),
        new("GPU_EMBED_BATCH", nameof(EmbedBatch)),
        new("GPU_MAX_BATCH_TOKENS", nameof(MaxBatchTokens)),
        new("GPU_MAX_BATCH_SEQUENCES", nameof(MaxBatchSequences)),
        new("TORCH_DEVICE", nameof(Device)),
        new("MODELS_DIR", nameof(ModelsDirectory)),
        new("GRAPHS_DIR", nameof(GraphsDirectory)),
        new("MODEL_EMBED", nameof(DefaultEmbedModel)),
        new("MODEL_BERTSCORE", nameof(DefaultBertScoreModel)),
        new("GPU_WARM_DEFAULTS", nameof(WarmDefaults)),
        new("GPU_PROGRESS_LOG_LEVEL", nameof(ProgressLogLevel)),
        new("GPU_METRICS_PORT", nameof(MetricsPort)),
        new("GPU_DRAIN_TIMEOUT", nameof(DrainTimeout)),
        new("GPU_MEMORY_BUDGET", nameof(MemoryBudget)),
        new("GPU_PRECISION", nameof(Precision)),
        new("GPU_FP16_ON_CPU", nameof(Fp16OnCpu)),
    ];

    /// <summary>This host's name: the silo name and the key of its host grain (<c>GPU_HOST_NAME</c>, default the machine name).</summary>
    public string HostName { get; set; } = Environment.MachineName;

    /// <summary>
    /// Jobs that run at once on this host (<c>GPU_MAX_CONCURRENT</c>). When it is not set, the host sizes admission from
    /// its device and batch limits (<see cref="HostAdmission"/>): enough requests to fill its forward passes.
    /// </summary>
    public int? MaxConcurrent { get; set; }

    /// <summary>Jobs that may wait behind them; past this the host answers busy (503, Retry-After: 5).</summary>
    public int MaxQueued { get; set; } = 1024;

    /// <summary>The chunk of progress logging and <c>/status</c>, in texts (<c>GPU_EMBED_BATCH</c>, default 32, as the seed).</summary>
    public int EmbedBatch { get; set; } = 32;

    /// <summary>
    /// Padded tokens per forward pass of the embedding batcher, which merges concurrent requests
    /// (<c>GPU_MAX_BATCH_TOKENS</c>, default 16384).
    /// </summary>
    public int MaxBatchTokens { get; set; } = 16_384;

    /// <summary>Texts per forward pass (<c>GPU_MAX_BATCH_SEQUENCES</c>; default 256 on a GPU, 32 on the CPU).</summary>
    public int? MaxBatchSequences { get; set; }

    /// <summary>auto, cpu, cuda or cuda:N (<c>TORCH_DEVICE</c>, the seed's name, or <c>Gpu:Device</c>).</summary>
    public string Device { get; set; } = "auto";

    /// <summary>The models folder (<c>MODELS_DIR</c>, default <c>~/.cache/orleansgpu/models</c>).</summary>
    public string? ModelsDirectory { get; set; }

    /// <summary>
    /// Where graphs built from native checkpoints are kept (<c>GRAPHS_DIR</c>, default <c>~/.cache/orleansgpu/graphs</c>),
    /// shared by the silos of a machine; a restart opens them without building again.
    /// </summary>
    public string? GraphsDirectory { get; set; }

    /// <summary>Default embedding model, warmed at start (<c>MODEL_EMBED</c>).</summary>
    public string DefaultEmbedModel { get; set; } = "all-MiniLM-L6-v2";

    /// <summary>Default BERTScore model, warmed at start (<c>MODEL_BERTSCORE</c>).</summary>
    public string DefaultBertScoreModel { get; set; } = "microsoft/deberta-xlarge-mnli";

    /// <summary>Load the default models when the silo starts (<c>GPU_WARM_DEFAULTS</c>).</summary>
    public bool WarmDefaults { get; set; } = true;

    /// <summary>
    /// The level of the seed's batch progress lines (<c>[embed] job=... batch 3/10 (30%)</c>), <c>GPU_PROGRESS_LOG_LEVEL</c>:
    /// Information by default, as the seed printed them; Debug hides them at the default log levels.
    /// </summary>
    public LogLevel ProgressLogLevel { get; set; } = LogLevel.Information;

    /// <summary>
    /// Port of a <c>/metrics</c> listener of <c>Silo.Gpu</c> (<c>GPU_METRICS_PORT</c>); 0, the default, runs none. A front
    /// that co-hosts its silo serves the same metrics on its own <c>/metrics</c>.
    /// </summary>
    public int MetricsPort { get; set; }

    /// <summary>
    /// How long a stopping host (SIGTERM: a deploy, <c>docker compose up</c> of a new image, Kubernetes) waits for the
    /// jobs it holds before it leaves the cluster (<c>GPU_DRAIN_TIMEOUT</c>, default one minute: a long BERTScore job on
    /// a large model). It takes no new work meanwhile. The process's own shutdown allows this plus
    /// <see cref="GpuSiloHosting.LeaveAllowance"/>; a container's stop grace period must be as long.
    /// </summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// The memory this host's loaded models may hold (<c>GPU_MEMORY_BUDGET</c>): a size (<c>12GiB</c>, <c>800MiB</c>) or a
    /// share of the device's memory (<c>80%</c>); by default 80% of the GPU's memory, or half of RAM on the CPU. Past it,
    /// idle models are unloaded, least recently used first (<see cref="HostMemory"/>).
    /// </summary>
    public string? MemoryBudget { get; set; }

    /// <summary>
    /// How long a load waits for memory held by models with work in flight to be freed before the host answers busy
    /// (the front tries another host, then answers 503 with Retry-After).
    /// </summary>
    public TimeSpan MemoryWait { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The precision of requests that name none (<c>GPU_PRECISION</c>): <c>fp32</c> (the default) or <c>fp16</c> for every
    /// model, or per model, <c>all-MiniLM-L6-v2=fp16,roberta-large=fp32</c>, with an optional bare value for the rest
    /// (<c>fp16,microsoft/deberta-xlarge-mnli=fp32</c>). See <see cref="PrecisionSetting"/>.
    /// </summary>
    public string Precision { get; set; } = Precisions.Fp32;

    /// <summary>
    /// Run fp16 requests on a CPU host with the fp16 graph (<c>GPU_FP16_ON_CPU</c>, default false: they are answered in
    /// fp32 and say so). ONNX Runtime's CPU provider computes such a graph in float32 between float16-rounded values:
    /// slower than fp32 and no closer to CUDA's arithmetic; for checking the fp16 path on a machine without a GPU.
    /// </summary>
    public bool Fp16OnCpu { get; set; }

    /// <summary>
    /// Requests of a model that fail in a row because a forward pass failed (for a reason of the host, not of the
    /// request; requests that shared the pass count each) before the host is degraded for that model: the fronts send its requests elsewhere for <see cref="DegradedCooldown"/>.
    /// </summary>
    public int DegradeAfterFailures { get; set; } = 3;

    /// <summary>How long a host degraded for a model gets none of its requests; then the next one probes it.</summary>
    public TimeSpan DegradedCooldown { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long after a model failed to load on this host (a damaged copy) the fronts send its requests elsewhere; the
    /// next load after it reads a fresh copy.
    /// </summary>
    public TimeSpan LoadRetryBackoff { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often the device's name and memory are read (<c>nvidia-smi</c>), off the grains' turns.</summary>
    public TimeSpan HardwareProbeInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long one hardware probe may take before its process is killed and the last snapshot kept.</summary>
    public TimeSpan HardwareProbeTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The program the hardware probe runs; tests point it at a script.</summary>
    internal string NvidiaSmi { get; set; } = "nvidia-smi";

    /// <summary>
    /// Where models come from beyond the models folder: the Hugging Face cache and hub, and which models requests may
    /// download. Read from Hugging Face's own variables (<c>HF_ENDPOINT</c>, <c>HF_TOKEN</c>, <c>HF_HUB_CACHE</c>,
    /// <c>HF_HOME</c>, <c>HF_HUB_OFFLINE</c>) with their meaning in huggingface_hub, and <c>MODEL_ALLOW</c>.
    /// </summary>
    public ModelSourceOptions Sources { get; set; } = new();

    /// <summary>The model sources as the host uses them: the default models are always allowed to download.</summary>
    public ModelSourceOptions EffectiveSources =>
        Sources with { DefaultModels = [.. Sources.DefaultModels, DefaultEmbedModel, DefaultBertScoreModel] };

    /// <summary>Binds <paramref name="options"/> from configuration: the <c>Gpu</c> section, the seed's variables, and Hugging Face's.</summary>
    public static void Bind(IConfiguration configuration, GpuHostOptions options)
    {
        Settings.Bind(configuration, Section, options, Aliases);
        options.Sources = ModelSourceOptions.FromVariables(name => configuration[name]);
    }

    /// <summary>Binds and checks the settings outside dependency injection (tools, and the front's defaults).</summary>
    public static GpuHostOptions FromConfiguration(IConfiguration configuration)
    {
        var options = new GpuHostOptions();
        Bind(configuration, options);
        var result = new GpuHostOptionsValidator().Validate(null, options);
        return result.Failed ? throw new OptionsValidationException(Section, typeof(GpuHostOptions), result.Failures) : options;
    }
}

/// <summary>The rules of <see cref="GpuHostOptions"/>; each failure names the setting as its user wrote it.</summary>
public sealed class GpuHostOptionsValidator : IValidateOptions<GpuHostOptions>
{
    public ValidateOptionsResult Validate(string? name, GpuHostOptions o) => Settings.Validate(
        string.IsNullOrWhiteSpace(o.HostName) ? $"{Name(nameof(o.HostName))} must not be empty." : null,
        o.MaxConcurrent is { } concurrent ? Positive(nameof(o.MaxConcurrent), concurrent) : null,
        Positive(nameof(o.MaxQueued), o.MaxQueued),
        Positive(nameof(o.EmbedBatch), o.EmbedBatch),
        Positive(nameof(o.MaxBatchTokens), o.MaxBatchTokens),
        o.MaxBatchSequences is { } sequences ? Positive(nameof(o.MaxBatchSequences), sequences) : null,
        DeviceError(o.Device),
        string.IsNullOrWhiteSpace(o.DefaultEmbedModel) ? $"{Name(nameof(o.DefaultEmbedModel))} must not be empty." : null,
        string.IsNullOrWhiteSpace(o.DefaultBertScoreModel) ? $"{Name(nameof(o.DefaultBertScoreModel))} must not be empty." : null,
        o.MetricsPort is < 0 or > 65535 ? $"{Name(nameof(o.MetricsPort))} must be a TCP port, or 0 for none; got {o.MetricsPort}." : null,
        o.DrainTimeout < TimeSpan.Zero ? $"{Name(nameof(o.DrainTimeout))} must not be negative; got {o.DrainTimeout}." : null,
        o.MemoryBudget is { } budget && MemoryBudget.Parse(budget) is null
            ? $"{Name(nameof(o.MemoryBudget))} must be a size such as 12GiB or 800MiB, or a share of the device's memory such as 80%; got '{budget}'."
            : null,
        o.MemoryWait < TimeSpan.Zero ? $"{Name(nameof(o.MemoryWait))} must not be negative; got {o.MemoryWait}." : null,
        Positive(nameof(o.DegradeAfterFailures), o.DegradeAfterFailures),
        o.DegradedCooldown < TimeSpan.Zero ? $"{Name(nameof(o.DegradedCooldown))} must not be negative; got {o.DegradedCooldown}." : null,
        o.LoadRetryBackoff < TimeSpan.Zero ? $"{Name(nameof(o.LoadRetryBackoff))} must not be negative; got {o.LoadRetryBackoff}." : null,
        o.HardwareProbeInterval <= TimeSpan.Zero ? $"{Name(nameof(o.HardwareProbeInterval))} must be positive; got {o.HardwareProbeInterval}." : null,
        o.HardwareProbeTimeout <= TimeSpan.Zero ? $"{Name(nameof(o.HardwareProbeTimeout))} must be positive; got {o.HardwareProbeTimeout}." : null,
        ModelSourceOptions.EndpointError(o.Sources.HubEndpoint),
        PrecisionSetting.Error(o.Precision) is { } precision ? $"{Name(nameof(o.Precision))}: {precision}" : null);

    private static string Name(string property) => Settings.Name(GpuHostOptions.Section, property, GpuHostOptions.Aliases);

    private static string? Positive(string property, int value) =>
        value > 0 ? null : $"{Name(property)} must be a positive integer; got {value}.";

    private static string? DeviceError(string device)
    {
        try
        {
            ExecutionDevice.Parse(device);
            return null;
        }
        catch (ArgumentException ex)
        {
            return $"{Name(nameof(GpuHostOptions.Device))}: {ex.Message.Split(" (Parameter", 2)[0]}";
        }
    }
}
