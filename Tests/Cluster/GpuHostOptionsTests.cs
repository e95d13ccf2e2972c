using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using OrleansGpu.Grains;

namespace OrleansGpu.Tests.Cluster;

/// <summary>Host settings: the seed's environment variables win over the project's keys; bad values are refused.</summary>
public sealed class GpuHostOptionsTests
{
    private static GpuHostOptions Read(params (string Key, string Value)[] settings) =>
        GpuHostOptions.FromConfiguration(new ConfigurationBuilder()
            .AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value)))
            .Build());

    [Fact]
    public void Defaults_are_the_seeds_and_leave_the_forward_pass_size_to_the_device()
    {
        var options = Read();
        Assert.Null(options.MaxConcurrent); // sized from the device and batch limits (HostAdmissionTests)
        Assert.Equal(32, options.EmbedBatch);
        Assert.Equal(16_384, options.MaxBatchTokens);
        Assert.Null(options.MaxBatchSequences);
        Assert.Equal("auto", options.Device);
    }

    [Fact]
    public void Seed_variables_win_over_the_project_keys()
    {
        var options = Read(("GPU_MAX_CONCURRENT", "8"), ("Gpu:MaxConcurrent", "3"), ("TORCH_DEVICE", "cuda:1"), ("Gpu:Device", "cpu"));
        Assert.Equal(8, options.MaxConcurrent);
        Assert.Equal("cuda:1", options.Device);
    }

    [Fact]
    public void Model_sources_read_hugging_faces_variables_and_always_allow_the_defaults()
    {
        var options = Read(
            ("HF_ENDPOINT", "http://mirror.example:8080/"), ("HUGGING_FACE_HUB_TOKEN", "hf_old_name"), ("HF_HOME", "/data/hf"),
            ("HF_HUB_OFFLINE", "1"), ("MODEL_ALLOW", "BAAI/*, intfloat/*"), ("MODEL_EMBED", "BAAI/bge-small-en-v1.5"));
        Assert.Equal("http://mirror.example:8080", options.Sources.HubEndpoint);
        Assert.Equal("hf_old_name", options.Sources.Token);
        Assert.Equal(Path.Combine("/data/hf", "hub"), options.Sources.CacheDirectory);
        Assert.True(options.Sources.Offline);
        Assert.Equal(["BAAI/*", "intfloat/*"], options.Sources.Allow);
        Assert.Equal(["BAAI/bge-small-en-v1.5", "microsoft/deberta-xlarge-mnli"], options.EffectiveSources.DefaultModels);

        var defaults = Read();
        Assert.Equal("https://huggingface.co", defaults.Sources.HubEndpoint);
        Assert.False(defaults.Sources.Offline);
        Assert.True(defaults.EffectiveSources.Allows("sentence-transformers/all-MiniLM-L6-v2"));
        Assert.False(defaults.EffectiveSources.Allows("someone/anything"));
        Assert.Equal("hf_new", Read(("HF_TOKEN", "hf_new"), ("HUGGING_FACE_HUB_TOKEN", "hf_old")).Sources.Token);

        // The token file huggingface-cli login writes, at HF_TOKEN_PATH or $HF_HOME/token.
        var home = Directory.CreateTempSubdirectory("hf-home-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(home, "token"), "hf_from_file\n");
            Assert.Equal("hf_from_file", Read(("HF_HOME", home)).Sources.Token);
            Assert.Null(Read(("HF_HOME", home), ("HF_TOKEN_PATH", Path.Combine(home, "none"))).Sources.Token);
        }
        finally
        {
            Directory.Delete(home, true);
        }
        Assert.Contains("HF_ENDPOINT", Assert.Throws<OptionsValidationException>(() => Read(("HF_ENDPOINT", "ftp://nope"))).Message);
    }

    [Fact]
    public void Batching_limits_are_read_from_variables_or_keys()
    {
        var options = Read(("GPU_MAX_BATCH_TOKENS", "4096"), ("Gpu:MaxBatchSequences", "64"), ("GPU_EMBED_BATCH", "10"));
        Assert.Equal(4096, options.MaxBatchTokens);
        Assert.Equal(64, options.MaxBatchSequences);
        Assert.Equal(10, options.EmbedBatch);
    }

    [Fact]
    public void Project_keys_bind_every_setting_type()
    {
        var options = Read(("Gpu:ProgressLogLevel", "Debug"), ("Gpu:HardwareProbeInterval", "00:00:30"), ("Gpu:WarmDefaults", "false"), ("GPU_METRICS_PORT", "9464"));
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Debug, options.ProgressLogLevel);
        Assert.Equal(TimeSpan.FromSeconds(30), options.HardwareProbeInterval);
        Assert.False(options.WarmDefaults);
        Assert.Equal(9464, options.MetricsPort);
    }

    [Theory]
    [InlineData("TORCH_DEVICE", "tpu")]
    [InlineData("GPU_WARM_DEFAULTS", "perhaps")]
    [InlineData("GPU_METRICS_PORT", "70000")]
    [InlineData("Gpu:MaxQueued", "-1")]
    [InlineData("Gpu:EmbedBatch", "lots")]
    public void Every_bad_value_is_refused_naming_its_setting(string setting, string value)
    {
        var error = Assert.Throws<OptionsValidationException>(() => Read((setting, value)));
        Assert.Contains(setting, error.Message);
    }

    [Theory]
    [InlineData("GPU_MAX_BATCH_TOKENS", "0")]
    [InlineData("GPU_MAX_BATCH_SEQUENCES", "-3")]
    [InlineData("GPU_MAX_CONCURRENT", "many")]
    public void Values_that_are_not_positive_integers_are_refused_with_the_variable_named(string variable, string value)
    {
        var error = Assert.Throws<OptionsValidationException>(() => Read((variable, value)));
        Assert.Contains(variable, error.Message);
    }
}

/// <summary>A GPU host with a bad setting does not start, and says which setting is wrong.</summary>
public sealed class GpuHostStartupTests
{
    [Fact]
    public async Task A_silo_with_a_bad_setting_exits_at_start_naming_it()
    {
        using var models = new Support.TestModelsFolder();
        await using var silo = Support.ServiceProcess.Start(models.Directory, new Dictionary<string, string>
        {
            ["GPU_MAX_CONCURRENT"] = "0",
        }, project: "Silo.Gpu");
        var code = await silo.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.NotEqual(0, code);
        Assert.Contains("GPU_MAX_CONCURRENT (Gpu:MaxConcurrent) must be a positive integer; got 0", silo.Output);
    }
}
