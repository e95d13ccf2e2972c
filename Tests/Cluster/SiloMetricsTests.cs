using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Cluster;

/// <summary>A GPU host that runs no front exposes its own /metrics when GPU_METRICS_PORT says where.</summary>
public sealed class SiloMetricsTests
{
    [Fact]
    public async Task A_silo_serves_its_per_model_metrics_on_the_configured_port()
    {
        using var models = new TestModelsFolder();
        var port = ServiceProcess.FreePort();
        await using var silo = ServiceProcess.Start(models.Directory, new Dictionary<string, string>
        {
            ["GPU_METRICS_PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["GPU_HOST_NAME"] = "metrics-host",
        }, project: "Silo.Gpu");
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };

        // The default model is warmed at start: its load shows once the warm-up is done.
        const string loaded = "orleansgpu_inference_model_load_seconds_count{model=\"sentence-transformers/all-MiniLM-L6-v2\",task=\"embed\"} 1";
        var deadline = DateTime.UtcNow.AddSeconds(90);
        var metrics = string.Empty;
        while (!metrics.Contains(loaded, StringComparison.Ordinal))
        {
            Assert.False(silo.HasExited, $"the silo exited:\n{silo.Output}");
            Assert.True(DateTime.UtcNow < deadline, $"no model load in the silo's /metrics within 90 s:\n{metrics}\n{silo.Output}");
            await Task.Delay(250);
            try
            {
                metrics = await http.GetStringAsync("/metrics");
            }
            catch (HttpRequestException)
            {
            }
        }

        Assert.Contains("orleansgpu_inference_model_memory_bytes{model=\"sentence-transformers/all-MiniLM-L6-v2\",task=\"embed\"}", metrics);
    }
}
