using System.Net;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using OrleansGpu.Api.Auth;

namespace OrleansGpu.Api.Hosting;

/// <summary>
/// Where the front listens. Port 8765 by default; <c>--urls</c> / <c>ASPNETCORE_URLS</c> override it. Without an API
/// key it listens on loopback only, and refuses other addresses unless <c>Api:AllowAnonymousRemote=true</c>
/// (<c>API_ALLOW_ANONYMOUS_REMOTE</c>) says so. The URLs are checked before start for a quick answer, and the
/// addresses Kestrel actually bound after start (<see cref="ListenGuard"/>), since Kestrel's own endpoint settings
/// (<c>Kestrel__Endpoints__X__Url</c>, <c>appsettings.json</c>) override the URLs.
/// </summary>
public static class ListenAddresses
{
    public const int DefaultPort = 8765;

    public static void Configure(WebApplicationBuilder builder, bool keyRequired)
    {
        var urls = builder.Configuration["urls"];
        var anonymousRemote = string.Equals(builder.Configuration["API_ALLOW_ANONYMOUS_REMOTE"] ?? builder.Configuration["Api:AllowAnonymousRemote"], "true", StringComparison.OrdinalIgnoreCase);
        if (string.IsNullOrWhiteSpace(urls))
        {
            urls = keyRequired || anonymousRemote ? $"http://0.0.0.0:{DefaultPort}" : $"http://127.0.0.1:{DefaultPort}";
            builder.WebHost.UseUrls(urls);
        }

        if (!keyRequired && !anonymousRemote && NotLoopback(urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)) is { Count: > 0 } remote)
        {
            throw new InvalidOperationException(Refusal(remote));
        }
    }

    internal static string Refusal(IEnumerable<string> addresses) =>
        $"Refusing to listen on {string.Join(", ", addresses)} without an API key. Set API_KEY, "
        + "or listen on 127.0.0.1, or set API_ALLOW_ANONYMOUS_REMOTE=true to serve without authentication.";

    internal static List<string> NotLoopback(IEnumerable<string> urls) => [.. urls.Where(u => !IsLoopback(u))];

    private static bool IsLoopback(string url)
    {
        var host = url.Contains("://", StringComparison.Ordinal) ? url[(url.IndexOf("://", StringComparison.Ordinal) + 3)..] : url;
        host = host.Split('/')[0];
        if (host.StartsWith('['))
        {
            host = host[1..host.IndexOf(']')];
        }
        else if (host.Contains(':'))
        {
            host = host[..host.LastIndexOf(':')];
        }

        return host == "localhost" || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));
    }
}

/// <summary>
/// After Kestrel started, checks the addresses it bound: without a key (and without the operator's opt-out) any
/// address beyond loopback stops the front with the reason and exit code 1. Until the stop completes,
/// <see cref="Http.LocalOnlyGuard"/> drops connections that arrive on such an address.
/// </summary>
internal sealed class ListenGuard(IServer server, ApiKeys keys, IHostApplicationLifetime lifetime, ILogger<ListenGuard> logger) : IHostedLifecycleService
{
    public Task StartedAsync(CancellationToken cancellationToken)
    {
        var bound = server.Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
        if (keys.LoopbackOnly && ListenAddresses.NotLoopback(bound) is { Count: > 0 } remote)
        {
            logger.LogCritical("{Reason}", ListenAddresses.Refusal(remote));
            Environment.ExitCode = 1;
            lifetime.StopApplication();
        }

        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
