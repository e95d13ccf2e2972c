using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using OrleansGpu.Inference.Files;
using OrleansGpu.Inference.Models.Hub;
using OrleansGpu.Inference.Tokenization;

namespace OrleansGpu.Inference.Models;

/// <summary>
/// Where a model comes from, in order: the models folder (<see cref="ModelStore"/>), the user's Hugging Face cache
/// read in place, then the hub, downloaded into that cache (when the host is online and the operator's allow list
/// lets requests cause it). One download per model at a time, in this process (callers share it) and across
/// processes on the machine (a lock file in the cache). Names the hub does not know are remembered for a while, in a
/// bounded list, so a flood of made-up names neither reaches the hub each time nor grows memory.
/// </summary>
public sealed class ModelSources : IDisposable
{
    /// <summary>How many names the hub did not know are remembered at most.</summary>
    public const int UnknownNameCapacity = 1024;

    private const string ModelLockName = "orleansgpu-model.lock";

    private readonly ILogger _logger;
    private readonly HubClient _hub;
    private readonly DownloadTracker _tracker;
    private readonly HubDownloader _downloader;
    private readonly ConcurrentDictionary<string, Lazy<Task<ModelFolder>>> _downloads = new(StringComparer.OrdinalIgnoreCase);
    private readonly ExpiringSet _unknown;

    public ModelSources(ModelStore folder, ModelSourceOptions options, ILogger? logger = null, HttpMessageHandler? handler = null)
    {
        Folder = folder;
        Options = options;
        _logger = logger ?? NullLogger.Instance;
        Cache = new HuggingFaceCache(options.CacheDirectory);
        _hub = new HubClient(options, handler);
        _tracker = new DownloadTracker(_logger);
        _downloader = new HubDownloader(_hub, Cache, _tracker, _logger);
        _unknown = new ExpiringSet(UnknownNameCapacity, options.UnknownNameMemory);
    }

    public ModelStore Folder { get; }

    public ModelSourceOptions Options { get; }

    public HuggingFaceCache Cache { get; }

    /// <summary>The downloads running in this process, with their progress.</summary>
    public IReadOnlyList<DownloadStatus> Downloads => _tracker.Running;

    /// <summary>How many names are remembered as unknown to the hub now (at most <see cref="UnknownNameCapacity"/>).</summary>
    public int UnknownNames => _unknown.Count;

    private string HostName => Folder.HostName;

    /// <summary>The model from the models folder or the Hugging Face cache, without touching the network; null when neither has it.</summary>
    public ModelFolder? FindLocal(ModelReference reference)
    {
        var searched = new List<string>();
        return FindLocal(reference, searched);
    }

    /// <summary>
    /// The name a request's model is known by on this host, found without downloading anything: the local model's
    /// name, or the repo the hub has under the requested name. Throws the client errors: not allowed, offline, unknown
    /// to the hub, hub unreachable, a model whose files say this build cannot serve it.
    /// </summary>
    public async Task<string> NameAsync(string requested, CancellationToken cancellationToken = default)
    {
        var reference = ModelReference.Parse(requested);
        var searched = new List<string>();
        if (FindLocal(reference, searched) is { } local)
        {
            return local.Name;
        }

        ThrowUnlessDownloadable(reference, searched);
        var found = await FirstOnHubAsync(
            reference,
            async candidate =>
            {
                // A model this build cannot serve is refused here already, before anything is activated or downloaded.
                var listing = await _hub.ListAsync(candidate, cancellationToken);
                ModelSupport.CheckFileList(candidate.ToString(), listing.Files);
                return candidate;
            });
        return found.ToString();
    }

    /// <summary>The model ready to load: from the models folder, the cache, or downloaded now (once, however many ask at the same time).</summary>
    public async Task<ModelFolder> ResolveAsync(string requested, CancellationToken cancellationToken = default)
    {
        var reference = ModelReference.Parse(requested);
        var searched = new List<string>();
        if (FindLocal(reference, searched) is { } local)
        {
            return local;
        }

        ThrowUnlessDownloadable(reference, searched);
        return await FirstOnHubAsync(reference, c => DownloadOnceAsync(c, refresh: false, cancellationToken));
    }

    /// <summary>
    /// The operator's pre-fetch (<c>Silo.Gpu fetch</c>): asks the hub for the revision's current commit and downloads
    /// what the cache lacks, whatever the models folder holds and the allow list says.
    /// </summary>
    public async Task<ModelFolder> FetchAsync(string requested, CancellationToken cancellationToken = default)
    {
        var reference = ModelReference.Parse(requested);
        if (Options.Offline)
        {
            throw new HubUnavailableException(reference.ToString(), "Fetching needs the hub, and HF_HUB_OFFLINE is set: unset it for the fetch.");
        }

        return await FirstOnHubAsync(reference, c => DownloadOnceAsync(c, refresh: true, cancellationToken));
    }

    private ModelFolder? FindLocal(ModelReference reference, List<string> searched)
    {
        if (Folder.Find(reference, searched) is { } folder)
        {
            return folder;
        }

        foreach (var candidate in ModelStore.Candidates(reference))
        {
            searched.Add(Cache.RepoFolder(candidate.Repo));
            if (FindCached(candidate) is { } cached)
            {
                return cached;
            }
        }

        return null;
    }

    /// <summary>The cache's snapshot of <paramref name="reference"/> when it is complete enough to load (weights, every shard, a tokenizer).</summary>
    private ModelFolder? FindCached(ModelReference reference)
    {
        var snapshot = Cache.SnapshotOf(reference);
        // A snapshot without tokenizer files is one that Python tools filled only with what a model class reads: the
        // download completes it. One with tokenizer files we cannot read is opened, to be refused with the reason.
        if (snapshot is null || WeightFiles.Find(snapshot) is null || !TokenizerFiles.HasAny(TokenizerFiles.In(snapshot)))
        {
            return null;
        }

        return Folder.Open(reference.ToString(), snapshot);
    }

    private void ThrowUnlessDownloadable(ModelReference reference, List<string> searched)
    {
        var name = reference.ToString();
        _logger.LogInformation("Model {Model} is not installed; searched {Places}", name, string.Join(", ", searched));
        if (Options.Offline)
        {
            throw new ModelNotFoundException(
                name,
                $"Model '{name}' is not installed on host {HostName}, and the host is offline (HF_HUB_OFFLINE=1), so it is not downloaded. "
                + $"Install it into the models folder or the Hugging Face cache (`Silo.Gpu fetch {name}` on a machine with access, then copy the cache), "
                + "or unset HF_HUB_OFFLINE.",
                searched);
        }

        if (!Options.Allows(reference.Repo) && !ModelStore.Candidates(reference).Any(c => Options.Allows(c.Repo)))
        {
            throw new ModelNotAllowedException(
                name,
                $"Model '{name}' is not installed on host {HostName}, and requests may download only the models the operator allows "
                + "(the default models, bert_score's models and MODEL_ALLOW). Ask the operator to add it to MODEL_ALLOW "
                + $"(comma-separated glob patterns such as 'org/*'; '*' allows any) or to install it (`Silo.Gpu fetch {name}`).");
        }
    }

    /// <summary>Runs <paramref name="attempt"/> on each repo the name may mean, in order, skipping those the hub does not know.</summary>
    private async Task<T> FirstOnHubAsync<T>(ModelReference reference, Func<ModelReference, Task<T>> attempt)
    {
        ModelNotFoundException? last = null;
        var candidates = ModelStore.Candidates(reference);
        foreach (var candidate in candidates)
        {
            var key = candidate.ToString();
            if (_unknown.Contains(key))
            {
                continue;
            }

            try
            {
                return await attempt(candidate);
            }
            catch (ModelNotFoundException ex)
            {
                _unknown.Add(key);
                last = ex;
            }
        }

        var name = reference.ToString();
        var reason = last?.Message
            ?? $"The Hugging Face hub ({_hub.Endpoint}) does not have it (its answer is less than {Options.UnknownNameMemory.TotalMinutes:0} minutes old). Check the name.";
        var tried = candidates.Count > 1 ? $" Names tried on the hub: {string.Join(", ", candidates)}." : string.Empty;
        throw new ModelNotFoundException(name, $"Model '{name}' is not installed on host {HostName}. {reason}{tried}");
    }

    private Task<ModelFolder> DownloadOnceAsync(ModelReference candidate, bool refresh, CancellationToken cancellationToken)
    {
        // Callers share one download: one caller giving up does not stop it for the others.
        var key = $"{candidate}|{refresh}";
        var shared = _downloads.GetOrAdd(key, _ => new Lazy<Task<ModelFolder>>(() =>
        {
            var task = Task.Run(() => DownloadAsync(candidate, refresh));
            task.ContinueWith(_ => _downloads.TryRemove(key, out var _), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
            return task;
        }));
        return shared.Value.WaitAsync(cancellationToken);
    }

    private async Task<ModelFolder> DownloadAsync(ModelReference candidate, bool refresh)
    {
        using var modelLock = await FileLock.AcquireAsync(
            Path.Combine(Cache.LockFolder(candidate.Repo), ModelLockName), _logger, $"another download of {candidate}", CancellationToken.None);

        // Another process may have finished it while this one waited for the lock.
        if (!refresh && FindCached(candidate) is { } cached)
        {
            return cached;
        }

        // What this build cannot serve is refused before the weights come: from the file list (a SentencePiece
        // tokenizer), then from the settings, which are downloaded first (the tokenizer.json's kind, the architecture).
        var name = candidate.ToString();
        var listing = await _hub.ListAsync(candidate, CancellationToken.None);
        ModelSupport.CheckFileList(name, listing.Files);
        var snapshot = await _downloader.DownloadAsync(
            candidate, listing, (settings, format) => ModelSupport.CheckSettings(name, settings, format), CancellationToken.None);
        return Folder.Open(name, snapshot);
    }

    public void Dispose() => _hub.Dispose();

    /// <summary>A set of names that forgets each after a while, holding at most a fixed number (the oldest go first).</summary>
    private sealed class ExpiringSet(int capacity, TimeSpan lifetime)
    {
        private readonly Dictionary<string, DateTime> _expiry = new(StringComparer.OrdinalIgnoreCase);
        private readonly Queue<string> _order = new();
        private readonly Lock _lock = new();

        public int Count
        {
            get
            {
                lock (_lock)
                {
                    return _expiry.Count;
                }
            }
        }

        public bool Contains(string name)
        {
            lock (_lock)
            {
                return _expiry.TryGetValue(name, out var until) && until > DateTime.UtcNow;
            }
        }

        public void Add(string name)
        {
            lock (_lock)
            {
                if (_expiry.ContainsKey(name))
                {
                    _expiry[name] = DateTime.UtcNow + lifetime;
                    return;
                }

                while (_expiry.Count >= capacity && _order.TryDequeue(out var oldest))
                {
                    _expiry.Remove(oldest);
                }

                _expiry[name] = DateTime.UtcNow + lifetime;
                _order.Enqueue(name);
            }
        }
    }
}
