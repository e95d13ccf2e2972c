using System.Net.Http.Headers;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Api;

/// <summary>
/// One real Api.Front process for the API tests, with an API key, one job at a time and a short queue (so that the
/// busy path can be reached), a 2 MiB body limit, the default input limits, and its request log on (so tests can
/// read what it logs).
/// </summary>
public sealed class FrontFixture : IAsyncLifetime
{
    public const string Key = "test-key-0123456789";

    private readonly TestModelsFolder _models = new();

    public const long BodyLimit = 2 * 1024 * 1024;

    public ServiceProcess Front { get; private set; } = null!;

    public string ModelsDirectory => _models.Directory;

    public async ValueTask InitializeAsync()
    {
        Front = ServiceProcess.Start(_models.Directory, new Dictionary<string, string>
        {
            ["API_KEY"] = Key,
            ["GPU_MAX_CONCURRENT"] = "1",
            ["GPU_MAX_QUEUE"] = "2",
            ["Logging__LogLevel__OrleansGpu.Api.Http.RequestLog"] = "Debug",

            // Asked for, and held back by the front all the same: these lines would print the query string.
            ["Logging__LogLevel__Microsoft.AspNetCore.Hosting.Diagnostics"] = "Information",
            ["GPU_MAX_BODY_BYTES"] = BodyLimit.ToString(),
        });
        await Front.WaitUntilHealthyAsync();
    }

    /// <summary>A client that sends the key as X-API-Key.</summary>
    public HttpClient Client()
    {
        var http = Anonymous();
        http.DefaultRequestHeaders.Add("X-API-Key", Key);
        return http;
    }

    public HttpClient Bearer()
    {
        var http = Anonymous();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Key);
        return http;
    }

    public HttpClient Anonymous() => new() { BaseAddress = Front.BaseAddress, Timeout = TimeSpan.FromMinutes(5) };

    public async ValueTask DisposeAsync()
    {
        await Front.DisposeAsync();
        _models.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class FrontCollection : ICollectionFixture<FrontFixture>
{
    public const string Name = "Front";
}
