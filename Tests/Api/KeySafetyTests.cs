using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Api;

/// <summary>
/// The key never shows where others can read it: the dashboard's login answers with a session cookie (not the key)
/// and a redirect without it, and neither the logs nor the dashboard's live trace print it.
/// </summary>
[Collection(FrontCollection.Name)]
public sealed class KeySafetyTests(FrontFixture fixture)
{
    [Fact]
    public async Task The_dashboard_login_gives_a_session_cookie_and_a_redirect_without_the_key()
    {
        var ct = TestContext.Current.CancellationToken;
        using var handler = new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false };
        using var http = new HttpClient(handler) { BaseAddress = fixture.Front.BaseAddress };

        using var login = await http.GetAsync($"/dashboard?api_key={FrontFixture.Key}&x=1", ct);
        Assert.Equal(HttpStatusCode.SeeOther, login.StatusCode);
        Assert.Equal("/dashboard/?x=1", login.Headers.Location?.OriginalString);
        var cookie = Assert.Single(login.Headers.GetValues("Set-Cookie"));
        Assert.DoesNotContain(FrontFixture.Key, cookie);
        Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("path=/dashboard", cookie, StringComparison.OrdinalIgnoreCase);
        var session = cookie.Split(';')[0];

        // The session opens the dashboard, and nothing else.
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(http, "/dashboard/version", session)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(http, "/info", session)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(http, "/dashboard/version", session[..^2] + "xx")).StatusCode);

        using var wrong = await http.GetAsync("/dashboard/?api_key=not-the-key", ct);
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.DoesNotContain("not-the-key", await wrong.Content.ReadAsStringAsync(ct));
        Assert.False(wrong.Headers.Contains("Set-Cookie"));
    }

    [Fact]
    public async Task Neither_the_log_nor_the_dashboard_trace_shows_the_key()
    {
        var ct = TestContext.Current.CancellationToken;
        using var watcher = fixture.Client();
        using var trace = await watcher.GetAsync("/dashboard/Trace", HttpCompletionOption.ResponseHeadersRead, ct);
        Assert.Equal(HttpStatusCode.OK, trace.StatusCode);
        await using var stream = await trace.Content.ReadAsStreamAsync(ct);
        var seen = new StringBuilder();
        using var reading = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var reader = Task.Run(async () =>
        {
            var buffer = new byte[4096];
            int read;
            while ((read = await stream.ReadAsync(buffer, reading.Token)) > 0)
            {
                lock (seen)
                {
                    seen.Append(Encoding.UTF8.GetString(buffer, 0, read));
                }
            }
        }, ct);

        using var handler = new HttpClientHandler { AllowAutoRedirect = false };
        using var browser = new HttpClient(handler) { BaseAddress = fixture.Front.BaseAddress };
        await browser.GetAsync($"/dashboard/?api_key={FrontFixture.Key}", ct);
        await browser.GetAsync($"/dashboard/?api_key={FrontFixture.Key}x", ct);
        await browser.GetAsync($"/info?api_key={FrontFixture.Key}", ct);
        using var warning = fixture.Client();
        await warning.GetAsync($"/info?api_key={FrontFixture.Key}", ct);

        // Something is logged meanwhile (the request log), so the trace is live; the key is in none of it.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!fixture.Front.Output.Contains("GET /info?…", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100, ct);
        }

        await Task.Delay(500, ct);
        await reading.CancelAsync();
        await Task.WhenAny(reader, Task.Delay(2000, ct));
        Assert.Contains("GET /info?…", fixture.Front.Output);
        Assert.DoesNotContain(FrontFixture.Key, fixture.Front.Output);
        lock (seen)
        {
            Assert.Contains("/info?…", seen.ToString());
            Assert.DoesNotContain(FrontFixture.Key, seen.ToString());
        }
    }

    private static Task<HttpResponseMessage> SendAsync(HttpClient http, string path, string cookie)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Add("Cookie", cookie);
        return http.SendAsync(request, TestContext.Current.CancellationToken);
    }
}

/// <summary>
/// A front without a key serves this machine only: it binds loopback (whatever Kestrel's own settings say), answers
/// loopback host names only (DNS rebinding), and takes JSON bodies only (no cross-site "simple" POSTs). Bad settings
/// stop the start with a message naming them.
/// </summary>
public sealed class KeylessFrontTests
{
    [Fact]
    public async Task Without_a_key_foreign_host_names_and_non_json_posts_are_refused()
    {
        using var models = new TestModelsFolder();
        await using var front = ServiceProcess.Start(models.Directory, new Dictionary<string, string> { ["GPU_WARM_DEFAULTS"] = "false" });
        await front.WaitUntilHealthyAsync();
        var ct = TestContext.Current.CancellationToken;
        using var http = new HttpClient { BaseAddress = front.BaseAddress };

        using var rebound = new HttpRequestMessage(HttpMethod.Get, "/info");
        rebound.Headers.Host = "attacker.example:8765";
        using var refused = await http.SendAsync(rebound, ct);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        using (var body = JsonDocument.Parse(await refused.Content.ReadAsStringAsync(ct)))
        {
            Assert.Equal("host_not_allowed", body.RootElement.GetProperty("code").GetString());
        }

        using var named = new HttpRequestMessage(HttpMethod.Get, "/info");
        named.Headers.Host = "localhost:8765";
        Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(named, ct)).StatusCode);

        using var simple = await http.PostAsync("/embed", new StringContent("""{"texts": ["a"]}""", Encoding.UTF8, "text/plain"), ct);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, simple.StatusCode);
        using var form = await http.PostAsync("/v1/embeddings", new FormUrlEncodedContent([new("input", "a")]), ct);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, form.StatusCode);
        Assert.Contains("application/json", await form.Content.ReadAsStringAsync(ct));

        var json = new StringContent("""{"texts": ["a"]}""");
        json.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        Assert.Equal(HttpStatusCode.OK, (await http.PostAsync("/embed", json, ct)).StatusCode);
    }

    [Fact]
    public async Task Without_a_key_kestrel_endpoints_beyond_loopback_stop_the_start()
    {
        using var models = new TestModelsFolder();
        await using var front = ServiceProcess.Start(models.Directory, new Dictionary<string, string>
        {
            ["Kestrel__Endpoints__Public__Url"] = $"http://0.0.0.0:{ServiceProcess.FreePort()}",
            ["GPU_WARM_DEFAULTS"] = "false",
        });
        var code = await front.WaitForExitAsync(TimeSpan.FromSeconds(90));
        Assert.NotEqual(0, code);
        Assert.Contains("Refusing to listen on http://0.0.0.0:", front.Output);
        Assert.Contains("without an API key", front.Output);
    }

    [Theory]
    [InlineData("GPU_MAX_BATCH_SIZE", "lots", "GPU_MAX_BATCH_SIZE (Api:MaxBatchSize) must be a positive integer; got 'lots'.")]
    [InlineData("GPU_MAX_BODY_BYTES", "-5", "GPU_MAX_BODY_BYTES (Api:MaxBodyBytes) must be a positive integer; got '-5'.")]
    [InlineData("API_ALLOW_ANONYMOUS_REMOTE", "yes", "API_ALLOW_ANONYMOUS_REMOTE (Api:AllowAnonymousRemote) must be true or false; got 'yes'.")]
    [InlineData("API_KEY", "two words", "API_KEY (Api:Keys) may hold printable ASCII only")]
    public async Task A_bad_setting_stops_the_start_with_a_message_naming_it(string variable, string value, string message)
    {
        using var models = new TestModelsFolder();
        await using var front = ServiceProcess.Start(models.Directory, new Dictionary<string, string> { [variable] = value, ["GPU_WARM_DEFAULTS"] = "false" });
        var code = await front.WaitForExitAsync(TimeSpan.FromSeconds(90));
        Assert.Equal(1, code);
        Assert.Contains($"Api.Front cannot start: {message}", front.Output);
        Assert.DoesNotContain("   at ", front.Output);
    }
}
