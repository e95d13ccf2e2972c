using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Api;

/// <summary>
/// Without ICU (.NET's globalization-invariant mode, or an image without libicu) accent stripping would silently do
/// nothing and the token ids would stop matching Hugging Face: the service must refuse, not answer wrong numbers.
/// </summary>
public sealed class GlobalizationTests
{
    [Fact]
    public async Task Without_ICU_embeddings_are_refused_with_the_reason_and_the_server_stays_up()
    {
        using var models = new TestModelsFolder();
        await using var front = ServiceProcess.Start(models.Directory, new Dictionary<string, string>
        {
            ["DOTNET_SYSTEM_GLOBALIZATION_INVARIANT"] = "1",
            ["GPU_WARM_DEFAULTS"] = "false",
        });
        await front.WaitUntilHealthyAsync();
        using var http = new HttpClient { BaseAddress = front.BaseAddress };
        var ct = TestContext.Current.CancellationToken;

        using var response = await http.PostAsJsonAsync("/embed", new { texts = new[] { "café résumé" } }, ct);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
        Assert.Contains("ICU", body.RootElement.GetProperty("detail").GetString());
        Assert.False(body.RootElement.TryGetProperty("embeddings", out _));
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health", ct)).StatusCode);
    }
}
