using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace OrleansGpu.Tests.Support;

/// <summary>
/// A STAND-IN for the Hugging Face hub on loopback (the real hub is not reachable here): two real Kestrel servers,
/// the hub and its "CDN", speaking the hub's protocol as huggingface_hub sees it. The hub answers
/// <c>/api/models/{repo}/revision/{rev}</c> (JSON with <c>id</c>, <c>sha</c>, <c>siblings</c>) and
/// <c>HEAD|GET /{repo}/resolve/{rev}/{path}</c>: small files directly (ETag = git blob sha1, <c>X-Repo-Commit</c>),
/// large (LFS) files by a 302 to the CDN host with <c>X-Linked-Etag</c> (sha256) and <c>X-Linked-Size</c>. Renamed repos
/// answer a relative 307 to the new name. Errors carry <c>X-Error-Code</c>: an unknown repo is a 401 RepoNotFound
/// without a token (404 with one), a gated repo a 401 (no token) or 403 (a token that has not accepted) GatedRepo.
/// The CDN serves blobs by sha256 with <c>Range</c>. Every request is recorded, and faults can be injected: a
/// connection cut mid-file, corrupted bytes, a slow link.
/// </summary>
public sealed class HubStandIn : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, StandInRepo> _repos = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<string, string> _renamed = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<string, byte[]> _blobs = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<StandInRequest> _requests = new();
    private readonly ConcurrentDictionary<string, long> _cutOnce = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _cutAlways = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _corrupt = new(StringComparer.Ordinal);
    private WebApplication _hub = null!;
    private WebApplication _cdn = null!;

    private HubStandIn()
    {
    }

    /// <summary>The hub's address, for <c>HF_ENDPOINT</c>.</summary>
    public string Endpoint { get; private set; } = "";

    /// <summary>The CDN's address: another host (port), to which no token may be sent.</summary>
    public string CdnEndpoint { get; private set; } = "";

    /// <summary>Tokens that may read gated repos.</summary>
    public HashSet<string> AcceptedTokens { get; } = [];

    /// <summary>Bytes per second the CDN sends (0: as fast as it can).</summary>
    public int CdnBytesPerSecond { get; set; }

    /// <summary>Every request both servers saw, in order.</summary>
    public IReadOnlyList<StandInRequest> Requests => [.. _requests];

    public static async Task<HubStandIn> StartAsync()
    {
        var standIn = new HubStandIn();
        standIn._hub = await StartServerAsync(standIn.ServeHubAsync);
        standIn._cdn = await StartServerAsync(standIn.ServeCdnAsync);
        standIn.Endpoint = Address(standIn._hub);
        standIn.CdnEndpoint = Address(standIn._cdn);
        return standIn;
    }

    /// <summary>
    /// The settings of a service process that downloads from this stand-in into <paramref name="cache"/> (the Hugging
    /// Face cache layout), allowed the stand-in's <c>acme/*</c> repos; <paramref name="more"/> adds or overrides.
    /// </summary>
    public Dictionary<string, string> ServiceEnvironment(string cache, params (string Name, string Value)[] more)
    {
        var settings = new Dictionary<string, string>
        {
            ["HF_ENDPOINT"] = Endpoint,
            ["HF_HUB_OFFLINE"] = "0",
            ["HF_HUB_CACHE"] = cache,
            ["MODEL_ALLOW"] = "acme/*",
        };
        foreach (var (name, value) in more)
        {
            settings[name] = value;
        }

        return settings;
    }

    /// <summary>Adds a repo; returns it for revisions and checks.</summary>
    public StandInRepo Add(string id, IReadOnlyDictionary<string, byte[]> files, bool gated = false)
    {
        var repo = new StandInRepo(id, gated);
        repo.AddCommit("main", files);
        _repos[id] = repo;
        foreach (var content in files.Values)
        {
            _blobs[Sha256(content)] = content;
        }

        return repo;
    }

    /// <summary>Another revision (a tag) of <paramref name="repo"/> with other files.</summary>
    public string AddRevision(StandInRepo repo, string name, IReadOnlyDictionary<string, byte[]> files)
    {
        foreach (var content in files.Values)
        {
            _blobs[Sha256(content)] = content;
        }

        return repo.AddCommit(name, files);
    }

    /// <summary>Makes <paramref name="oldId"/> answer with a redirect to <paramref name="newId"/>, as the hub does for moved repos.</summary>
    public void Rename(string oldId, string newId) => _renamed[oldId] = newId;

    /// <summary>The CDN drops the connection once, after sending <paramref name="afterBytes"/> bytes of the file with this content.</summary>
    public void CutOnce(byte[] content, long afterBytes) => _cutOnce[Sha256(content)] = afterBytes;

    /// <summary>The CDN drops every connection for this content after sending <paramref name="afterBytes"/> bytes (until <see cref="Heal"/>).</summary>
    public void CutAlways(byte[] content, long afterBytes) => _cutAlways[Sha256(content)] = afterBytes;

    /// <summary>The CDN sends this content with one byte changed (same length): its sha256 no longer matches.</summary>
    public void Corrupt(byte[] content) => _corrupt[Sha256(content)] = 0;

    public void Heal()
    {
        _cutOnce.Clear();
        _cutAlways.Clear();
        _corrupt.Clear();
        CdnBytesPerSecond = 0;
    }

    /// <summary>The CDN's GETs of the blob with this content (each a download or a resumed part of one).</summary>
    public IReadOnlyList<StandInRequest> CdnGets(byte[] content)
    {
        var sha = Sha256(content);
        return [.. Requests.Where(r => r.Server == "cdn" && r.Method == "GET" && r.Path.EndsWith(sha, StringComparison.Ordinal))];
    }

    /// <summary>Stops both servers: the hub becomes unreachable (connection refused).</summary>
    public async Task StopAsync()
    {
        await _hub.StopAsync();
        await _cdn.StopAsync();
    }

    public static string Sha256(byte[] content) => Convert.ToHexStringLower(SHA256.HashData(content));

    /// <summary>Large files go through LFS (and so the CDN) on the hub; these are the weights.</summary>
    public static bool IsLfs(string path) =>
        path.EndsWith(".onnx", StringComparison.Ordinal) || path.EndsWith(".safetensors", StringComparison.Ordinal)
        || path.EndsWith(".bin", StringComparison.Ordinal) || path.EndsWith(".h5", StringComparison.Ordinal)
        || path.EndsWith(".msgpack", StringComparison.Ordinal) || path.EndsWith("_data", StringComparison.Ordinal);

    private static async Task<WebApplication> StartServerAsync(RequestDelegate serve)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        app.Run(serve);
        await app.StartAsync();
        return app;
    }

    private static string Address(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/');

    private void Record(string server, HttpContext context) => _requests.Enqueue(new StandInRequest(
        server,
        context.Request.Method,
        Uri.UnescapeDataString(context.Request.Path.Value ?? ""),
        context.Request.Headers.Authorization.FirstOrDefault(),
        context.Request.Headers.Range.FirstOrDefault()));

    private async Task ServeHubAsync(HttpContext context)
    {
        Record("hub", context);
        var path = Uri.UnescapeDataString(context.Request.Path.Value ?? "").TrimStart('/');
        var token = context.Request.Headers.Authorization.FirstOrDefault() is { } auth && auth.StartsWith("Bearer ", StringComparison.Ordinal) ? auth[7..] : null;

        if (path.StartsWith("api/models/", StringComparison.Ordinal))
        {
            // api/models/{repo}/revision/{rev}
            var rest = path["api/models/".Length..];
            var at = rest.LastIndexOf("/revision/", StringComparison.Ordinal);
            if (at < 0)
            {
                await Error(context, 404, "EntryNotFound");
                return;
            }

            var id = rest[..at];
            var revision = rest[(at + "/revision/".Length)..];
            if (_renamed.TryGetValue(id, out var newId))
            {
                Redirect(context, 307, $"/api/models/{newId}/revision/{revision}");
                return;
            }

            if (!_repos.TryGetValue(id, out var repo))
            {
                await Error(context, token is null ? 401 : 404, "RepoNotFound");
                return;
            }

            if (repo.CommitOf(revision) is not { } commit)
            {
                await Error(context, 404, "RevisionNotFound");
                return;
            }

            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(JsonSerializer.Serialize(new
            {
                id = repo.Id,
                sha = commit,
                gated = repo.Gated ? "manual" : (object)false,
                siblings = repo.Files(commit).Keys.Order(StringComparer.Ordinal).Select(f => new { rfilename = f }),
            }));
            return;
        }

        // {repo}/resolve/{rev}/{path}
        var resolve = path.IndexOf("/resolve/", StringComparison.Ordinal);
        if (resolve < 0)
        {
            await Error(context, 404, "EntryNotFound");
            return;
        }

        var repoId = path[..resolve];
        var afterResolve = path[(resolve + "/resolve/".Length)..];
        var slash = afterResolve.IndexOf('/');
        var rev = slash < 0 ? afterResolve : afterResolve[..slash];
        var file = slash < 0 ? "" : afterResolve[(slash + 1)..];
        if (_renamed.TryGetValue(repoId, out var renamed))
        {
            Redirect(context, 307, $"/{renamed}/resolve/{rev}/{file}");
            return;
        }

        if (!_repos.TryGetValue(repoId, out var r))
        {
            await Error(context, token is null ? 401 : 404, "RepoNotFound");
            return;
        }

        if (r.Gated && (token is null || !AcceptedTokens.Contains(token)))
        {
            await Error(context, token is null ? 401 : 403, "GatedRepo");
            return;
        }

        if (r.CommitOf(rev) is not { } resolvedCommit)
        {
            await Error(context, 404, "RevisionNotFound");
            return;
        }

        if (!r.Files(resolvedCommit).TryGetValue(file, out var content))
        {
            await Error(context, 404, "EntryNotFound");
            return;
        }

        context.Response.Headers["X-Repo-Commit"] = resolvedCommit;
        if (IsLfs(file))
        {
            var sha = Sha256(content);
            context.Response.Headers["X-Linked-Etag"] = $"\"{sha}\"";
            context.Response.Headers["X-Linked-Size"] = content.Length.ToString();
            context.Response.Headers.ETag = $"\"{GitBlobSha1(Encoding.UTF8.GetBytes($"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {content.Length}\n"))}\"";
            Redirect(context, 302, $"{CdnEndpoint}/blobs/{sha}");
            return;
        }

        context.Response.Headers.ETag = $"\"{GitBlobSha1(content)}\"";
        context.Response.ContentLength = content.Length;
        if (HttpMethods.IsGet(context.Request.Method))
        {
            await context.Response.Body.WriteAsync(content);
        }
    }

    private async Task ServeCdnAsync(HttpContext context)
    {
        Record("cdn", context);
        var sha = (context.Request.Path.Value ?? "").Split('/').Last();
        if (!_blobs.TryGetValue(sha, out var content))
        {
            context.Response.StatusCode = 404;
            return;
        }

        if (_corrupt.ContainsKey(sha))
        {
            content = (byte[])content.Clone();
            content[content.Length / 2] ^= 0xFF;
        }

        long from = 0;
        if (context.Request.Headers.Range.FirstOrDefault() is { } range && range.StartsWith("bytes=", StringComparison.Ordinal))
        {
            from = long.Parse(range["bytes=".Length..].Split('-')[0]);
            if (from >= content.Length)
            {
                context.Response.StatusCode = 416;
                return;
            }

            context.Response.StatusCode = 206;
            context.Response.Headers.ContentRange = $"bytes {from}-{content.Length - 1}/{content.Length}";
        }

        context.Response.Headers.AcceptRanges = "bytes";
        context.Response.ContentLength = content.Length - from;
        long? cut = _cutOnce.TryRemove(sha, out var once) ? once : _cutAlways.TryGetValue(sha, out var always) ? always : null;
        var sent = 0L;
        var position = from;
        const int Chunk = 64 * 1024;
        while (position < content.Length)
        {
            var count = (int)Math.Min(Chunk, content.Length - position);
            if (cut is { } limit && sent + count > limit)
            {
                count = (int)(limit - sent);
                await context.Response.Body.WriteAsync(content.AsMemory((int)position, count));
                await context.Response.Body.FlushAsync();
                context.Abort(); // the connection breaks mid-file
                return;
            }

            await context.Response.Body.WriteAsync(content.AsMemory((int)position, count));
            position += count;
            sent += count;
            if (CdnBytesPerSecond > 0)
            {
                await context.Response.Body.FlushAsync();
                await Task.Delay(TimeSpan.FromSeconds((double)count / CdnBytesPerSecond));
            }
        }
    }

    private static void Redirect(HttpContext context, int status, string location)
    {
        context.Response.StatusCode = status;
        context.Response.Headers.Location = location;
    }

    private static Task Error(HttpContext context, int status, string code)
    {
        context.Response.StatusCode = status;
        context.Response.Headers["X-Error-Code"] = code;
        context.Response.Headers["X-Error-Message"] = code;
        return Task.CompletedTask;
    }

    private static string GitBlobSha1(byte[] content)
    {
        var header = Encoding.ASCII.GetBytes($"blob {content.Length}\0");
        return Convert.ToHexStringLower(SHA1.HashData([.. header, .. content]));
    }

    public async ValueTask DisposeAsync()
    {
        await _hub.DisposeAsync();
        await _cdn.DisposeAsync();
    }
}

/// <summary>A request the stand-in saw.</summary>
public sealed record StandInRequest(string Server, string Method, string Path, string? Authorization, string? Range);

/// <summary>A repo of the stand-in hub: commits of files, and refs (branches, tags) naming them.</summary>
public sealed class StandInRepo(string id, bool gated)
{
    private readonly ConcurrentDictionary<string, IReadOnlyDictionary<string, byte[]>> _commits = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _refs = new(StringComparer.Ordinal);

    public string Id { get; } = id;

    public bool Gated { get; } = gated;

    /// <summary>The commit "main" points at.</summary>
    public string MainCommit => _refs["main"];

    public string AddCommit(string refName, IReadOnlyDictionary<string, byte[]> files)
    {
        var commit = Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes($"{Id}/{refName}/{_commits.Count}")));
        _commits[commit] = files;
        _refs[refName] = commit;
        return commit;
    }

    public string? CommitOf(string revision) =>
        _refs.TryGetValue(revision, out var commit) ? commit : _commits.ContainsKey(revision) ? revision : null;

    public IReadOnlyDictionary<string, byte[]> Files(string commit) => _commits[commit];
}
