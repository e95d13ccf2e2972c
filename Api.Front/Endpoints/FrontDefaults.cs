using OrleansGpu.Grains;

namespace OrleansGpu.Api.Endpoints;

/// <summary>The models a request gets when it names none (<c>MODEL_EMBED</c>, <c>MODEL_BERTSCORE</c>).</summary>
public sealed record FrontDefaults(string EmbedModel, string BertScoreModel)
{
    public static FrontDefaults FromConfiguration(IConfiguration configuration)
    {
        var options = GpuHostOptions.FromConfiguration(configuration);
        return new FrontDefaults(options.DefaultEmbedModel, options.DefaultBertScoreModel);
    }
}
