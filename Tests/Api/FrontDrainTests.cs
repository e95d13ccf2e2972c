using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Api;

/// <summary>SIGTERM on the one-machine front (a co-hosted silo), as a restart or <c>docker stop</c> sends it: a real process.</summary>
public sealed class FrontDrainTests
{
    [Fact]
    public async Task A_stopping_front_answers_the_request_in_flight_refuses_new_connections_without_a_5xx_and_exits_cleanly()
    {
        var ct = TestContext.Current.CancellationToken;
        using var models = new TestModelsFolder();
        await using var front = ServiceProcess.Start(models.Directory);
        await front.WaitUntilHealthyAsync();
        using var http = new HttpClient { BaseAddress = front.BaseAddress, Timeout = TimeSpan.FromMinutes(3) };
        (await http.PostAsJsonAsync("/embed", new { texts = new[] { "warm" } }, ct)).EnsureSuccessStatusCode();

        // A request that runs for seconds on the CPU, in flight when the front is told to stop.
        var texts = Enumerable.Range(0, 1500).Select(i => $"a request in flight through the shutdown, number {i}, with a few more words").ToArray();
        var inFlight = http.PostAsJsonAsync("/embed", new { texts }, ct);
        await WaitUntilAsync(async () =>
        {
            using var status = JsonDocument.Parse(await http.GetStringAsync("/status", ct));
            return status.RootElement.GetProperty("active_jobs").EnumerateArray().Any(j => j.GetProperty("items").GetInt32() == texts.Length);
        });

        front.Terminate();

        // New connections meanwhile: refused (or, in the moment before the listener closes, served), never a 5xx.
        var refused = 0;
        var statuses = new List<HttpStatusCode>();
        while (!inFlight.IsCompleted)
        {
            using var fresh = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero }) { BaseAddress = front.BaseAddress, Timeout = TimeSpan.FromSeconds(10) };
            try
            {
                using var response = await fresh.GetAsync("/health", ct);
                statuses.Add(response.StatusCode);
            }
            catch (HttpRequestException ex) when (ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionRefused })
            {
                refused++;
            }

            await Task.Delay(50, ct);
        }

        using var answer = await inFlight;
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        using var body = JsonDocument.Parse(await answer.Content.ReadAsStringAsync(ct));
        Assert.Equal(texts.Length, body.RootElement.GetProperty("embeddings").GetArrayLength());
        Assert.True(refused > 0, $"no new connection was refused while the request ran (answers: {string.Join(", ", statuses)})");
        Assert.DoesNotContain(statuses, s => (int)s >= 500);

        // Then the co-hosted silo drains (nothing left) and leaves; the process ends well.
        Assert.Equal(0, await front.WaitForExitAsync(TimeSpan.FromSeconds(90)));
        Assert.Contains("drained", front.Output);
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached in 60 s");
            await Task.Delay(20);
        }
    }
}
