using System.Globalization;
using Microsoft.Extensions.Configuration;
using OrleansGpu.Inference.Models;

namespace OrleansGpu.Grains;

/// <summary>
/// Settings of one GPU host. Each has a project name (section <c>Gpu</c>) and, where the seed service had one, the
/// seed's environment variable, which wins so that the seed's users can switch without changes.
/// </summary>
public sealed record GpuHostOptions
{
    /// <summary>This host's name: the silo name and the key of its host grain (<c>GPU_HOST_NAME</c>, default the machine name).</summary>
    public string HostName { get; init; } = Environment.MachineName;

    /// <summary>Jobs that run at once on this host (<c>GPU_MAX_CONCURRENT</c>, default 2).</summary>
    public int MaxConcurrent { get; init; } = 2;

    /// <summary>Jobs that may wait behind them; past this the host answers busy (503, Retry-After: 5).</summary>
    public int MaxQueued { get; init; } = 1024;

    /// <summary>The chunk of progress logging and <c>/status</c>, in texts (<c>GPU_EMBED_BATCH</c>, default 32, as the seed).</summary>
    public int EmbedBatch { get; init; } = 32;

    /// <summary>
    /// Padded tokens per forward pass of the embedding batcher, which merges concurrent requests
    /// (<c>GPU_MAX_BATCH_TOKENS</c>, default 16384).
    /// </summary>
    public int MaxBatchTokens { get; init; } = 16_384;

    /// <summary>Texts per forward pass (<c>GPU_MAX_BATCH_SEQUENCES</c>; default 256 on a GPU, 32 on the CPU).</summary>
    public int? MaxBatchSequences { get; init; }

    /// <summary>auto, cpu, cuda or cuda:N (<c>TORCH_DEVICE</c>, the seed's name, or <c>Gpu:Device</c>).</summary>
    public string Device { get; init; } = "auto";

    /// <summary>The models folder (<c>MODELS_DIR</c>).</summary>
    public string? ModelsDirectory { get; init; }

    /// <summary>Default embedding model, warmed at start (<c>MODEL_EMBED</c>).</summary>
    public string DefaultEmbedModel { get; init; } = "all-MiniLM-L6-v2";

    /// <summary>Default BERTScore model, warmed at start (<c>MODEL_BERTSCORE</c>).</summary>
    public string DefaultBertScoreModel { get; init; } = "microsoft/deberta-xlarge-mnli";

    /// <summary>Load the default models when the silo starts.</summary>
    public bool WarmDefaults { get; init; } = true;

    /// <summary>
    /// Where models come from beyond the models folder: the Hugging Face cache (<c>HF_HUB_CACHE</c>, <c>HF_HOME</c>) and
    /// hub (<c>HF_ENDPOINT</c>, <c>HF_TOKEN</c>, <c>HF_HUB_OFFLINE</c>), and what requests may download (<c>MODEL_ALLOW</c>).
    /// The default models are always allowed.
    /// </summary>
    public ModelSourceOptions Sources { get; init; } = new();

    public static GpuHostOptions FromConfiguration(IConfiguration configuration)
    {
        var section = configuration.GetSection("Gpu");
        string? Get(string seedVariable, string key) =>
            NonEmpty(configuration[seedVariable]) ?? NonEmpty(section[key]);

        var defaults = new GpuHostOptions();
        var embed = Get("MODEL_EMBED", "DefaultEmbedModel") ?? defaults.DefaultEmbedModel;
        var bertScore = Get("MODEL_BERTSCORE", "DefaultBertScoreModel") ?? defaults.DefaultBertScoreModel;
        return new GpuHostOptions
        {
            HostName = Get("GPU_HOST_NAME", "HostName") ?? defaults.HostName,
            MaxConcurrent = PositiveInt(Get("GPU_MAX_CONCURRENT", "MaxConcurrent"), defaults.MaxConcurrent, "GPU_MAX_CONCURRENT"),
            MaxQueued = PositiveInt(Get("GPU_MAX_QUEUE", "MaxQueued"), defaults.MaxQueued, "GPU_MAX_QUEUE"),
            EmbedBatch = PositiveInt(Get("GPU_EMBED_BATCH", "EmbedBatch"), defaults.EmbedBatch, "GPU_EMBED_BATCH"),
            MaxBatchTokens = PositiveInt(Get("GPU_MAX_BATCH_TOKENS", "MaxBatchTokens"), defaults.MaxBatchTokens, "GPU_MAX_BATCH_TOKENS"),
            MaxBatchSequences = Get("GPU_MAX_BATCH_SEQUENCES", "MaxBatchSequences") is { } sequences
                ? PositiveInt(sequences, 1, "GPU_MAX_BATCH_SEQUENCES")
                : null,
            Device = Get("TORCH_DEVICE", "Device") ?? defaults.Device,
            ModelsDirectory = Get("MODELS_DIR", "ModelsDirectory"),
            DefaultEmbedModel = embed,
            DefaultBertScoreModel = bertScore,
            WarmDefaults = !string.Equals(Get("GPU_WARM_DEFAULTS", "WarmDefaults"), "false", StringComparison.OrdinalIgnoreCase),
            Sources = ModelSourceOptions.FromVariables(name => NonEmpty(configuration[name]), [embed, bertScore]),
        };
    }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    private static int PositiveInt(string? value, int fallback, string name)
    {
        if (value is null)
        {
            return fallback;
        }

        return int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0
            ? n
            : throw new ArgumentException($"{name} must be a positive integer; got '{value}'.");
    }
}
