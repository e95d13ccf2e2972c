using Microsoft.Extensions.Options;
using OrleansGpu.Grains.Hosting;

namespace OrleansGpu.Api.Scatter;

/// <summary>When the front splits a compute request across hosts (section <c>Split</c>; <c>GPU_SPLIT_MIN_TEXTS</c>).</summary>
public sealed class SplitOptions
{
    public const string Section = "Split";

    public static IReadOnlyList<SettingAlias> Aliases { get; } = [new("GPU_SPLIT_MIN_TEXTS", nameof(MinTexts))];

    /// <summary>
    /// The fewest texts (for <c>/bertscore</c>, candidates) a part may hold (<c>GPU_SPLIT_MIN_TEXTS</c> or
    /// <c>Split:MinTexts</c>). A request of at least twice as many is split into one part per live host, or fewer so
    /// that each part keeps this many. Default 256, a full forward pass on a GPU, so a part still fills the GPU it
    /// lands on; 0 never splits.
    /// </summary>
    public int MinTexts { get; set; } = 256;
}

public sealed class SplitOptionsValidator : IValidateOptions<SplitOptions>
{
    public ValidateOptionsResult Validate(string? name, SplitOptions o) => Settings.Validate(
        o.MinTexts < 0 ? $"{Settings.Name(SplitOptions.Section, nameof(o.MinTexts), SplitOptions.Aliases)} must be 0 (never split) or a positive integer; got {o.MinTexts}." : null);
}
