using System.Text.Json;
using OrleansGpu.Grains;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Api;

/// <summary>/info and /status keep the seed's fields, with our per-host extensions.</summary>
[Collection(FrontCollection.Name)]
public sealed class SeedShapeTests(FrontFixture fixture)
{
    [Fact]
    public async Task Info_has_the_seed_fields_and_hosts()
    {
        using var http = fixture.Client();
        using var body = JsonDocument.Parse(await http.GetStringAsync("/info", TestContext.Current.CancellationToken));
        var root = body.RootElement;
        foreach (var field in new[] { "device", "device_name", "vram_total_mb", "vram_used_mb", "cuda_version", "loaded_models", "hosts", "version" })
        {
            Assert.True(root.TryGetProperty(field, out _), field);
        }

        Assert.Equal("cpu", root.GetProperty("device").GetString());
        Assert.Contains("sentence-transformers/all-MiniLM-L6-v2", root.GetProperty("loaded_models").EnumerateArray().Select(m => m.GetString()));
        Assert.Equal(1, root.GetProperty("hosts").GetArrayLength());
    }

    [Fact]
    public async Task Status_has_the_seed_queue_and_jobs()
    {
        using var http = fixture.Client();
        using var body = JsonDocument.Parse(await http.GetStringAsync("/status", TestContext.Current.CancellationToken));
        var queue = body.RootElement.GetProperty("queue");
        Assert.Equal(1, queue.GetProperty("max_concurrent").GetInt32());
        foreach (var field in new[] { "in_flight", "available_slots", "waiting_estimate" })
        {
            Assert.True(queue.TryGetProperty(field, out _), field);
        }

        Assert.Equal(JsonValueKind.Array, body.RootElement.GetProperty("active_jobs").ValueKind);
        Assert.Equal(1, body.RootElement.GetProperty("hosts").GetArrayLength());
    }

    [Fact]
    public async Task Status_shows_each_hosts_admission_and_where_it_came_from()
    {
        // The fixture's front sets GPU_MAX_CONCURRENT; a front with the defaults sizes admission for its device.
        using (var http = fixture.Client())
        {
            using var body = JsonDocument.Parse(await http.GetStringAsync("/status", TestContext.Current.CancellationToken));
            var host = body.RootElement.GetProperty("hosts")[0];
            Assert.Equal(1, host.GetProperty("max_concurrent").GetInt32());
            Assert.Equal("GPU_MAX_CONCURRENT", host.GetProperty("max_concurrent_source").GetString());
        }

        using var models = new TestModelsFolder();
        await using var front = ServiceProcess.Start(models.Directory);
        await front.WaitUntilHealthyAsync();
        using var anonymous = new HttpClient { BaseAddress = front.BaseAddress };
        using var status = JsonDocument.Parse(await anonymous.GetStringAsync("/status", TestContext.Current.CancellationToken));
        var expected = HostAdmission.Resolve(new GpuHostOptions(), onGpu: false);
        Assert.Equal(expected.Value, status.RootElement.GetProperty("queue").GetProperty("max_concurrent").GetInt32());
        var only = status.RootElement.GetProperty("hosts")[0];
        Assert.Equal(expected.Value, only.GetProperty("max_concurrent").GetInt32());
        Assert.Equal(expected.Source, only.GetProperty("max_concurrent_source").GetString());
        Assert.True(expected.Value > HostAdmission.Minimum);
    }

    [Fact]
    public async Task Without_a_key_the_front_refuses_to_listen_beyond_loopback()
    {
        using var models = new TestModelsFolder();
        await using var front = ServiceProcess.Start(models.Directory, urls: $"http://0.0.0.0:{ServiceProcess.FreePort()}");
        var code = await front.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.NotEqual(0, code);
        Assert.Contains("without an API key", front.Output);
    }
}
