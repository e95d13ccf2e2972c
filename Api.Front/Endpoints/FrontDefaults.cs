using Microsoft.Extensions.Options;
using OrleansGpu.Api.Hosting;
using OrleansGpu.Grains;

namespace OrleansGpu.Api.Endpoints;

/// <summary>The models a request gets when it names none (<c>MODEL_EMBED</c>, <c>MODEL_BERTSCORE</c>, as the hosts read them).</summary>
public sealed class FrontDefaults
{
    public string EmbedModel { get; set; } = new GpuHostOptions().DefaultEmbedModel;

    public string BertScoreModel { get; set; } = new GpuHostOptions().DefaultBertScoreModel;
}

internal sealed class FrontDefaultsSetup(IConfiguration configuration) : IConfigureOptions<FrontDefaults>, IValidateOptions<FrontDefaults>
{
    public void Configure(FrontDefaults options)
    {
        var settings = new Settings(configuration, []);
        options.EmbedModel = settings.String("MODEL_EMBED", "Gpu:DefaultEmbedModel") ?? options.EmbedModel;
        options.BertScoreModel = settings.String("MODEL_BERTSCORE", "Gpu:DefaultBertScoreModel") ?? options.BertScoreModel;
    }

    public ValidateOptionsResult Validate(string? name, FrontDefaults options)
    {
        var problems = new List<string>();
        foreach (var (variable, value) in new[] { ("MODEL_EMBED", options.EmbedModel), ("MODEL_BERTSCORE", options.BertScoreModel) })
        {
            if (value.Length > Contracts.ModelName.MaxLength || value.Any(char.IsControl))
            {
                problems.Add($"{variable} must be a model name of at most {Contracts.ModelName.MaxLength} printable characters.");
            }
        }

        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}
