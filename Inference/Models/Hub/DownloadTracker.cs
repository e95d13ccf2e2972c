using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace OrleansGpu.Inference.Models.Hub;

/// <summary>One download in progress, as <c>/status</c> shows it.</summary>
public sealed record DownloadStatus(
    string Id, string Model, DateTimeOffset StartedAt, int Files, int FilesDone, long BytesTotal, long BytesDone, string? CurrentFile);

/// <summary>
/// The downloads running in this process, with bytes done of bytes total. Progress goes to the log when a download
/// starts, when each file is complete, at most every <see cref="LogInterval"/> while bytes arrive, and at the end.
/// </summary>
public sealed class DownloadTracker(ILogger logger)
{
    public static readonly TimeSpan LogInterval = TimeSpan.FromSeconds(5);

    private readonly ConcurrentDictionary<string, Download> _running = new(StringComparer.Ordinal);
    private readonly ILogger _logger = logger;

    /// <summary>The downloads in progress now.</summary>
    public IReadOnlyList<DownloadStatus> Running => [.. _running.Values.Select(d => d.Status).OrderBy(s => s.StartedAt)];

    public Download Start(string model, string endpoint, IReadOnlyList<HubFile> files)
    {
        var download = new Download(this, model, files);
        _running[download.Id] = download;
        _logger.LogInformation(
            "Downloading {Model} from {Endpoint}: {Files} files, {Megabytes:0.0} MB (progress every {Seconds} s and per file)",
            model, endpoint, files.Count, files.Sum(f => f.Size) / 1e6, LogInterval.TotalSeconds);
        return download;
    }

    /// <summary>One model's download: counts bytes as they arrive.</summary>
    public sealed class Download : IDisposable
    {
        private readonly DownloadTracker _owner;
        private readonly string _model;
        private readonly int _files;
        private readonly long _total;
        private readonly DateTimeOffset _started = DateTimeOffset.UtcNow;
        private long _done;
        private long _cached;
        private int _filesDone;
        private string? _current;
        private long _lastLog = Environment.TickCount64;
        private bool _finished;

        internal Download(DownloadTracker owner, string model, IReadOnlyList<HubFile> files)
        {
            _owner = owner;
            _model = model;
            _files = files.Count;
            _total = files.Sum(f => f.Size);
        }

        public string Id { get; } = "dl-" + Guid.NewGuid().ToString("N")[..9];

        internal DownloadStatus Status =>
            new(Id, _model, _started, _files, Volatile.Read(ref _filesDone), _total, Interlocked.Read(ref _done), Volatile.Read(ref _current));

        public void BeginFile(string path) => Volatile.Write(ref _current, path);

        /// <summary>Counts <paramref name="bytes"/> more (negative when a file restarts from its beginning).</summary>
        public void Add(long bytes)
        {
            var done = Interlocked.Add(ref _done, bytes);
            var now = Environment.TickCount64;
            var last = Interlocked.Read(ref _lastLog);
            if (now - last >= LogInterval.TotalMilliseconds && Interlocked.CompareExchange(ref _lastLog, now, last) == last)
            {
                var seconds = Math.Max((DateTimeOffset.UtcNow - _started).TotalSeconds, 1e-3);
                _owner._logger.LogInformation(
                    "Downloading {Model}: {Done:0.0} of {Total:0.0} MB ({Percent:0}%), {Rate:0.0} MB/s",
                    _model, done / 1e6, _total / 1e6, _total == 0 ? 100 : 100.0 * done / _total, done / 1e6 / seconds);
            }
        }

        public void FileDone(HubFile file, bool fromCache)
        {
            Interlocked.Increment(ref _filesDone);
            if (fromCache)
            {
                Interlocked.Add(ref _cached, file.Size);
            }

            _owner._logger.LogInformation(
                "Downloading {Model}: {File} ({Megabytes:0.0} MB) {How}, file {Done} of {Files}",
                _model, file.Path, file.Size / 1e6, fromCache ? "already in the cache" : "done", Volatile.Read(ref _filesDone), _files);
        }

        public void Finished() => _finished = true;

        public void Dispose()
        {
            _owner._running.TryRemove(Id, out _);
            if (_finished)
            {
                var cached = Interlocked.Read(ref _cached);
                _owner._logger.LogInformation(
                    "Downloaded {Model}: {Megabytes:0.0} MB in {Seconds:0.0} s ({Cached:0.0} MB were in the cache already)",
                    _model, (Interlocked.Read(ref _done) - cached) / 1e6, (DateTimeOffset.UtcNow - _started).TotalSeconds, cached / 1e6);
            }
        }
    }
}
