using System.Net;
using System.Text;
using System.Text.Json;

namespace OrleansGpu.Tests.Api;

[Collection(FrontCollection.Name)]
public sealed class AuthTests(FrontFixture fixture)
{
    [Fact]
    public async Task Health_needs_no_key_and_reports_the_device()
    {
        using var http = fixture.Anonymous();
        using var response = await http.GetAsync("/health", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        Assert.Equal("ok", body.RootElement.GetProperty("status").GetString());
        Assert.Equal("cpu", body.RootElement.GetProperty("device").GetString());
        Assert.Equal(1, body.RootElement.GetProperty("hosts").GetInt32());
        Assert.True(body.RootElement.GetProperty("ready").GetBoolean());
    }

    [Theory]
    [InlineData("GET", "/info")]
    [InlineData("GET", "/status")]
    [InlineData("POST", "/embed")]
    [InlineData("POST", "/bertscore")]
    [InlineData("POST", "/v1/embeddings")]
    [InlineData("GET", "/metrics")]
    [InlineData("GET", "/openapi/v1.json")]
    [InlineData("GET", "/no-such-route")]
    [InlineData("DELETE", "/health/../info")]
    public async Task Every_other_route_needs_the_key_unknown_routes_too(string method, string path)
    {
        using var http = fixture.Anonymous();
        using var request = new HttpRequestMessage(new HttpMethod(method), path)
        {
            Content = method == "POST" ? new StringContent("""{"texts":["x"]}""", Encoding.UTF8, "application/json") : null,
        };
        using var response = await http.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("application/", response.Content.Headers.ContentType?.MediaType);
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.Contains("API key", text);
    }

    [Fact]
    public async Task A_wrong_key_is_refused()
    {
        using var http = fixture.Anonymous();
        http.DefaultRequestHeaders.Add("X-API-Key", FrontFixture.Key + "x");
        using var response = await http.GetAsync("/info", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("not valid", await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task The_key_works_as_x_api_key_and_as_bearer()
    {
        using var a = fixture.Client();
        using var b = fixture.Bearer();
        Assert.Equal(HttpStatusCode.OK, (await a.GetAsync("/info", TestContext.Current.CancellationToken)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await b.GetAsync("/status", TestContext.Current.CancellationToken)).StatusCode);
    }

    [Fact]
    public async Task With_the_key_an_unknown_route_is_a_json_404()
    {
        using var http = fixture.Client();
        using var response = await http.GetAsync("/no-such-route", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        Assert.Equal("not_found", body.RootElement.GetProperty("code").GetString());
    }

    [Fact]
    public async Task Metrics_and_openapi_are_served_with_the_key()
    {
        using var http = fixture.Client();
        var metrics = await http.GetStringAsync("/metrics", TestContext.Current.CancellationToken);
        Assert.Contains("http_requests_received_total", metrics);
        var openapi = await http.GetStringAsync("/openapi/v1.json", TestContext.Current.CancellationToken);
        Assert.Contains("/bertscore", openapi);
    }
}
