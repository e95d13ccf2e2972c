using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text.Json;

namespace OrleansGpu.Inference.Models.Hub;

/// <summary>A repo's files at a revision, as the hub lists them.</summary>
/// <param name="Repo">The repo id the hub answered for (a renamed repo answers with its new id).</param>
/// <param name="Commit">The commit the revision points at.</param>
/// <param name="Files">Every file of the repo at that commit (<c>siblings[].rfilename</c>).</param>
public sealed record RepoListing(string Repo, string Commit, IReadOnlyList<string> Files);

/// <summary>What a <c>HEAD</c> of a file says about it.</summary>
/// <param name="Etag">The blob's name in the cache: the file's sha256 for LFS files, the git blob sha1 for others.</param>
/// <param name="Size">The file's length in bytes.</param>
/// <param name="Sha256">The sha256 the hub announces for an LFS file (<c>X-Linked-Etag</c>), which the download must match.</param>
public sealed record HubFile(string Path, string Etag, long Size, string? Sha256);

/// <summary>
/// The Hugging Face hub's HTTP protocol, as huggingface_hub speaks it: listings from <c>/api/models/{repo}/revision/{rev}</c>,
/// metadata from a <c>HEAD</c> of <c>/{repo}/resolve/{rev}/{path}</c> (relative redirects of renamed repos followed, the
/// redirect of a large file to its CDN not), bodies from a <c>GET</c> that follows redirects and resumes with
/// <c>Range</c>. The token goes to the hub's own host only, never to a host it redirects to.
/// </summary>
public sealed class HubClient : IDisposable
{
    private const int MaxRedirects = 10;

    private readonly HttpClient _http;
    private readonly Uri _endpoint;
    private readonly string? _token;
    private readonly TimeSpan _timeout;

    public HubClient(ModelSourceOptions options, HttpMessageHandler? handler = null)
    {
        _endpoint = new Uri(options.HubEndpoint.TrimEnd('/') + "/");
        _token = options.Token;
        _timeout = options.RequestTimeout;
        handler ??= new SocketsHttpHandler
        {
            AllowAutoRedirect = false, // redirects are followed here, so that the token stays on the hub's host
            ConnectTimeout = options.RequestTimeout,
            AutomaticDecompression = DecompressionMethods.None,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        };
        _http = new HttpClient(handler) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("orleansgpu", "1"));
    }

    /// <summary>The hub's address, for messages (<c>https://huggingface.co</c>).</summary>
    public string Endpoint => _endpoint.ToString().TrimEnd('/');

    /// <summary>The page where a user accepts a gated model's licence.</summary>
    public string PageOf(string repo) => $"{Endpoint}/{repo}";

    /// <summary>Lists <paramref name="reference"/>'s files and the commit its revision points at.</summary>
    public async Task<RepoListing> ListAsync(ModelReference reference, CancellationToken cancellationToken)
    {
        var url = new Uri(_endpoint, $"api/models/{reference.Repo}/revision/{Uri.EscapeDataString(reference.RevisionOrDefault)}");
        using var response = await SendAsync(HttpMethod.Get, url, followAbsolute: false, range: null, reference, cancellationToken);
        ThrowIfFailed(response, reference);
        using var timeout = Deadline(cancellationToken);
        await using var body = await response.Content.ReadAsStreamAsync(timeout.Token);
        using var doc = await JsonDocument.ParseAsync(body, cancellationToken: timeout.Token);
        var root = doc.RootElement;
        var commit = root.TryGetProperty("sha", out var sha) && sha.ValueKind == JsonValueKind.String ? sha.GetString() : null;
        if (commit is null || !ModelReference.IsCommitHash(commit))
        {
            throw new HubUnavailableException(reference.ToString(), $"The hub at {Endpoint} answered the listing of '{reference}' without a commit.");
        }

        var repo = root.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String && ModelReference.TryParse(id.GetString(), out var named)
            ? named.Repo
            : reference.Repo;
        var files = new List<string>();
        if (root.TryGetProperty("siblings", out var siblings) && siblings.ValueKind == JsonValueKind.Array)
        {
            foreach (var sibling in siblings.EnumerateArray())
            {
                if (sibling.TryGetProperty("rfilename", out var name) && name.GetString() is { Length: > 0 } file)
                {
                    files.Add(file);
                }
            }
        }

        return new RepoListing(repo, commit, files);
    }

    /// <summary>The metadata of one file at <paramref name="commit"/> (a <c>HEAD</c>; the body is not fetched).</summary>
    public async Task<HubFile> HeadAsync(ModelReference reference, string commit, string path, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(HttpMethod.Head, ResolveUrl(reference.Repo, commit, path), followAbsolute: false, range: null, reference, cancellationToken);
        var redirected = (int)response.StatusCode is >= 300 and < 400;
        if (!redirected)
        {
            ThrowIfFailed(response, reference);
        }

        var linkedEtag = Header(response, "X-Linked-Etag");
        var etag = Normalize(linkedEtag ?? response.Headers.ETag?.Tag ?? Header(response, "ETag"));
        var size = long.TryParse(Header(response, "X-Linked-Size"), out var linked) ? linked : response.Content.Headers.ContentLength;
        if (etag is null || size is null)
        {
            throw new HubUnavailableException(reference.ToString(), $"The hub at {Endpoint} gave no ETag or size for {path} of '{reference}'.");
        }

        // An LFS file's X-Linked-Etag is its sha256; that is what the downloaded bytes must hash to.
        var sha256 = linkedEtag is not null && Normalize(linkedEtag) is { Length: 64 } hex && hex.All(char.IsAsciiHexDigitLower) ? hex : null;
        return new HubFile(path, etag, size.Value, sha256);
    }

    /// <summary>
    /// Starts the body of <paramref name="path"/> from byte <paramref name="offset"/> (a <c>Range</c> request when above 0).
    /// The caller reads the stream; <see cref="HttpResponseMessage.StatusCode"/> says whether the range was honoured
    /// (206) or the whole file comes (200).
    /// </summary>
    public async Task<HttpResponseMessage> GetAsync(ModelReference reference, string commit, string path, long offset, CancellationToken cancellationToken)
    {
        var response = await SendAsync(
            HttpMethod.Get, ResolveUrl(reference.Repo, commit, path), followAbsolute: true, offset > 0 ? offset : null, reference, cancellationToken);
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            return response;
        }

        try
        {
            ThrowIfFailed(response, reference);
            return response;
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    /// <summary>A token that ends the wait for an answer after the request timeout.</summary>
    public CancellationTokenSource Deadline(CancellationToken cancellationToken)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(_timeout);
        return cts;
    }

    public TimeSpan Timeout => _timeout;

    private Uri ResolveUrl(string repo, string commit, string path) =>
        new(_endpoint, $"{repo}/resolve/{commit}/{string.Join('/', path.Split('/').Select(Uri.EscapeDataString))}");

    /// <summary>
    /// Sends a request and follows redirects by hand: relative ones (a renamed repo) always, absolute ones (the CDN)
    /// when <paramref name="followAbsolute"/>. Connection failures and timeouts become <see cref="HubUnavailableException"/>.
    /// </summary>
    private async Task<HttpResponseMessage> SendAsync(
        HttpMethod method, Uri url, bool followAbsolute, long? range, ModelReference reference, CancellationToken cancellationToken)
    {
        for (var hop = 0; ; hop++)
        {
            using var request = new HttpRequestMessage(method, url);
            request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
            if (range is { } from)
            {
                request.Headers.Range = new RangeHeaderValue(from, null);
            }

            if (_token is not null && IsHub(url))
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _token);
            }

            HttpResponseMessage response;
            using (var timeout = Deadline(cancellationToken))
            {
                try
                {
                    response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
                }
                catch (Exception ex) when (ex is HttpRequestException or SocketException
                    || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
                {
                    throw Unreachable(reference, ex);
                }
            }

            var status = (int)response.StatusCode;
            if (status is not (301 or 302 or 303 or 307 or 308) || response.Headers.Location is not { } location || hop >= MaxRedirects)
            {
                return response;
            }

            // A Location such as "/org/name/resolve/..." is relative; on Unix Uri reads it as an absolute file path.
            var raw = location.OriginalString;
            var relative = !Uri.TryCreate(raw, UriKind.Absolute, out var absolute) || absolute.Scheme is not ("http" or "https");
            if (!relative && !followAbsolute)
            {
                return response;
            }

            response.Dispose();
            url = relative ? new Uri(url, raw) : absolute!;
        }
    }

    private bool IsHub(Uri url) =>
        string.Equals(url.Scheme, _endpoint.Scheme, StringComparison.OrdinalIgnoreCase)
        && string.Equals(url.IdnHost, _endpoint.IdnHost, StringComparison.OrdinalIgnoreCase)
        && url.Port == _endpoint.Port;

    /// <summary>The hub could not be reached: what to do about it, in the words a client can act on.</summary>
    public HubUnavailableException Unreachable(ModelReference reference, Exception cause) => new(
        reference.ToString(),
        $"The Hugging Face hub at {Endpoint} cannot be reached ({Reason(cause)}), so '{reference}' cannot be downloaded. "
        + "Pre-fetch the model on a machine with access (`Silo.Gpu fetch " + reference + "`) and copy the Hugging Face cache, "
        + "point HF_ENDPOINT at a reachable mirror, or run with HF_HUB_OFFLINE=1 and a populated cache.",
        cause);

    private static string Reason(Exception cause) => cause switch
    {
        OperationCanceledException => "no answer in time",
        HttpRequestException { InnerException: SocketException s } => s.SocketErrorCode switch
        {
            SocketError.ConnectionRefused => "connection refused",
            SocketError.HostNotFound or SocketError.NoData or SocketError.TryAgain => "host name not found",
            SocketError.TimedOut => "connection timed out",
            var other => other.ToString(),
        },
        HttpRequestException h when h.HttpRequestError == HttpRequestError.NameResolutionError => "host name not found",
        HttpRequestException h when h.HttpRequestError == HttpRequestError.ConnectionError => "connection failed",
        _ => "connection failed",
    };

    /// <summary>Turns the hub's error answers into errors that say what to do.</summary>
    private void ThrowIfFailed(HttpResponseMessage response, ModelReference reference)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }

        var status = (int)response.StatusCode;
        var code = Header(response, "X-Error-Code");
        var name = reference.ToString();
        var page = PageOf(reference.Repo);
        if (code == "GatedRepo" || (code is null && status is 401 or 403))
        {
            var tokenAdvice = _token is null
                ? "Set HF_TOKEN on the host to a token of an account that may read it"
                : "The host's HF_TOKEN may not read it: use a token of an account that may";
            throw new ModelGatedException(name, $"Model '{name}' is gated or private on the Hugging Face hub ({status}). {tokenAdvice}, and accept the model's licence at {page}.");
        }

        if (code == "EntryNotFound")
        {
            throw new ModelDownloadException(name, $"The Hugging Face hub ({Endpoint}) lists a file of '{name}' that it does not serve. Retry later.");
        }

        if (code == "RevisionNotFound")
        {
            throw new ModelNotFoundException(name, $"Model '{reference.Repo}' has no revision '{reference.RevisionOrDefault}' on the Hugging Face hub ({Endpoint}). Check the branch, tag or commit after '@'.");
        }

        if (code == "RepoNotFound" || status == 404 || status == 401)
        {
            var privateAdvice = _token is null ? " If it is private, set HF_TOKEN on the host." : string.Empty;
            throw new ModelNotFoundException(name, $"Model '{name}' was not found on the Hugging Face hub ({Endpoint}). Check the name.{privateAdvice}");
        }

        var detail = Header(response, "X-Error-Message") ?? response.ReasonPhrase ?? string.Empty;
        throw new HubUnavailableException(name, $"The Hugging Face hub at {Endpoint} failed to serve '{name}' ({status} {detail}). Retry later, or pre-fetch the model (`Silo.Gpu fetch {name}`).");
    }

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values)
            ? values.FirstOrDefault()
            : null;

    /// <summary>An ETag as huggingface_hub keeps it: without <c>W/</c> and quotes.</summary>
    private static string? Normalize(string? etag)
    {
        if (etag is null)
        {
            return null;
        }

        if (etag.StartsWith("W/", StringComparison.Ordinal))
        {
            etag = etag[2..];
        }

        etag = etag.Trim('"');

        // The etag names a blob file: it must not be able to name anything else.
        return etag.Length > 0 && etag.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_') ? etag : null;
    }

    public void Dispose() => _http.Dispose();
}
