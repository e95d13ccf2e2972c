using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using OrleansGpu.Grains;

namespace OrleansGpu.Tests.Cluster;

/// <summary><c>GPU_PRECISION</c>: fp32 unless set; one precision for every model, one per model, or both; anything else stops the start naming it.</summary>
public sealed class PrecisionSettingTests
{
    private const string MiniLm = "sentence-transformers/all-MiniLM-L6-v2";
    private const string Deberta = "microsoft/deberta-xlarge-mnli";

    private static GpuHostOptions Read(params (string Key, string Value)[] settings) =>
        GpuHostOptions.FromConfiguration(new ConfigurationBuilder()
            .AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value)))
            .Build());

    [Fact]
    public void Unset_every_model_is_fp32_and_fp16_does_not_run_on_the_cpu()
    {
        var options = Read();
        Assert.Equal("fp32", options.Precision);
        Assert.False(options.Fp16OnCpu);
        var setting = PrecisionSetting.Parse(options.Precision);
        Assert.Equal("fp32", setting.For(MiniLm));
        Assert.Equal("fp32", setting.For(Deberta));
    }

    [Theory]
    [InlineData("fp16", "fp16", "fp16")]
    [InlineData("all-MiniLM-L6-v2=fp16", "fp16", "fp32")]
    [InlineData("sentence-transformers/all-MiniLM-L6-v2=fp16, microsoft/deberta-xlarge-mnli=fp32", "fp16", "fp32")]
    [InlineData("fp16,microsoft/deberta-xlarge-mnli=fp32", "fp16", "fp32")]
    [InlineData("deberta-xlarge-mnli=fp16", "fp32", "fp16")]
    [InlineData(" FP16 ", "fp16", "fp16")]
    public void The_setting_gives_each_model_its_default(string value, string miniLm, string deberta)
    {
        var setting = PrecisionSetting.Parse(Read(("GPU_PRECISION", value), ("GPU_FP16_ON_CPU", "true")).Precision);
        Assert.Equal(miniLm, setting.For(MiniLm));
        Assert.Equal(deberta, setting.For(Deberta));
    }

    [Theory]
    [InlineData("fp8", "'fp8' names no precision")]
    [InlineData("all-MiniLM-L6-v2=half", "'all-MiniLM-L6-v2=half' names no precision")]
    [InlineData("fp16,fp32", "two precisions for every model")]
    [InlineData("=fp16", "names no model")]
    public void A_bad_setting_is_refused_naming_the_variable_and_the_allowed_values(string value, string reason)
    {
        var error = Assert.Throws<OptionsValidationException>(() => Read(("GPU_PRECISION", value)));
        Assert.Contains("GPU_PRECISION", error.Message);
        Assert.Contains(reason, error.Message);
    }
}
