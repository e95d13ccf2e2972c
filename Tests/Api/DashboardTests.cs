using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Api;

/// <summary>
/// Two Silo.Gpu processes on one machine (localhost clustering, as the README's commands run them) and Api.Front as a
/// pure client with an API key; the Orleans dashboard at /dashboard, loaded in headless Chromium, lists both silos.
/// </summary>
public sealed partial class DashboardTests
{
    private const string Key = "dashboard-key";

    private static string? Chromium =>
        new[] { Environment.GetEnvironmentVariable("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser" }
            .FirstOrDefault(p => !string.IsNullOrEmpty(p) && File.Exists(p));

    [Fact]
    public async Task The_dashboard_needs_the_key_and_lists_every_silo_in_a_browser()
    {
        Assert.SkipWhen(Chromium is null, "Chromium is not installed (apt-get install chromium; .ci/run does it).");
        using var models = new TestModelsFolder();
        var primary = ServiceProcess.FreePort();
        var gatewayA = ServiceProcess.FreePort();
        var gatewayB = ServiceProcess.FreePort();
        await using var siloA = ServiceProcess.Start(models.Directory, new Dictionary<string, string>
        {
            ["GPU_HOST_NAME"] = "dash-a", ["Cluster__SiloPort"] = primary.ToString(), ["Cluster__PrimarySiloPort"] = primary.ToString(), ["Cluster__GatewayPort"] = gatewayA.ToString(),
        }, project: "Silo.Gpu");
        await using var siloB = ServiceProcess.Start(models.Directory, new Dictionary<string, string>
        {
            ["GPU_HOST_NAME"] = "dash-b", ["Cluster__SiloPort"] = ServiceProcess.FreePort().ToString(), ["Cluster__PrimarySiloPort"] = primary.ToString(), ["Cluster__GatewayPort"] = gatewayB.ToString(),
        }, project: "Silo.Gpu");
        await using var front = ServiceProcess.Start(models.Directory, new Dictionary<string, string>
        {
            ["API_KEY"] = Key, ["Cluster__Mode"] = "client", ["Cluster__Gateways"] = $"{gatewayA},{gatewayB}",
        });
        await front.WaitUntilHealthyAsync(TimeSpan.FromSeconds(120));

        using var http = new HttpClient { BaseAddress = front.BaseAddress };
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (JsonDocument.Parse(await http.GetStringAsync("/health")).RootElement.GetProperty("hosts").GetInt32() < 2)
        {
            Assert.True(DateTime.UtcNow < deadline, $"both silos did not join:\n{siloB.Output}");
            await Task.Delay(250);
        }

        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/dashboard/")).StatusCode);

        var page = await RenderAsync(new Uri(front.BaseAddress, $"/dashboard/?api_key={Key}#/silos"));
        Assert.Contains("Silo Health", page);
        Assert.Contains("dash-a", page);
        Assert.Contains("dash-b", page);
        Assert.Matches(ActiveSilos(), page);

        // The grain state page of a host grain: its memory budget and use and each loaded model's memory, from the
        // dashboard's own API (what its page draws), once the default model has loaded there.
        deadline = DateTime.UtcNow.AddSeconds(90);
        JsonElement host;
        while (true)
        {
            var body = await http.GetStringAsync($"/dashboard/GrainState?grainId=dash-a&grainType=OrleansGpu.Grains.GpuHostGrain&api_key={Key}");
            // The dashboard answers the state as a JSON document inside a JSON string.
            using var state = JsonDocument.Parse(JsonDocument.Parse(body).RootElement.GetString()!);
            host = state.RootElement.GetProperty("GetState").Clone();
            if (host.GetProperty("LoadedModels").GetArrayLength() > 0)
            {
                break;
            }

            Assert.True(DateTime.UtcNow < deadline, $"no model loaded on dash-a:\n{host}");
            await Task.Delay(500);
        }

        Assert.Equal("dash-a", host.GetProperty("Host").GetString());
        var memory = host.GetProperty("Memory");
        Assert.True(memory.GetProperty("BudgetBytes").GetInt64() > 0, memory.ToString());
        var model = Assert.Single(memory.GetProperty("Models").EnumerateArray(), m => m.GetProperty("Name").GetString()!.EndsWith("all-MiniLM-L6-v2", StringComparison.Ordinal));
        Assert.True(model.GetProperty("Bytes").GetInt64() > 0, model.ToString());
    }

    /// <summary>The page's text after its scripts ran, as headless Chromium renders it.</summary>
    private static async Task<string> RenderAsync(Uri url)
    {
        var profile = Directory.CreateTempSubdirectory("chromium-").FullName;
        var info = new ProcessStartInfo(Chromium!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in new[]
        {
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", $"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom", url.ToString(),
        })
        {
            info.ArgumentList.Add(argument);
        }

        using var chromium = Process.Start(info)!;
        var dom = chromium.StandardOutput.ReadToEndAsync();
        _ = chromium.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        await chromium.WaitForExitAsync(timeout.Token);
        Directory.Delete(profile, true);
        return string.Join(' ', Tags().Replace(await dom, " ").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
    }

    [GeneratedRegex("<[^>]+>")]
    private static partial Regex Tags();

    [GeneratedRegex(@"Active Silos\s+2")]
    private static partial Regex ActiveSilos();
}
