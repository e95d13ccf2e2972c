using System.Diagnostics;
using OrleansGpu.Inference.Diagnostics;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Inference.Embeddings;

/// <summary>How large the forward passes that <see cref="EncoderBatcher"/> assembles may be, and how many run at once.</summary>
public sealed record BatchLimits
{
    /// <summary>Padded tokens per forward pass (sequences × the longest of them).</summary>
    public int MaxBatchTokens { get; init; } = 16_384;

    /// <summary>
    /// Sequences per forward pass; by default 256 on a GPU, where large passes multiply throughput, and 32 on the
    /// CPU, where they gain nothing and would only make progress coarser.
    /// </summary>
    public int? MaxBatchSequences { get; init; }

    /// <summary>
    /// Forward passes in flight at once, each on its own thread over the same session (default 2): on a GPU, while
    /// one pass runs the other's results are pooled and the next is assembled; on the CPU both compute, each on its
    /// share of the cores (<see cref="EncoderOptions.CpuIntraOpThreads"/>: the model opens its sessions with
    /// <see cref="EncoderOptions.ConcurrentRuns"/> set to this).
    /// </summary>
    public int Workers { get; init; } = 2;

    /// <summary>
    /// What one forward pass costs beyond its padded tokens, in tokens: the batcher splits what waits into passes so
    /// as to minimise padded tokens plus this per pass. Large on a GPU (by default 1,024: a pass of a few sequences
    /// takes nearly as long as a full one, so filling passes wins even at some padding), small on the CPU (by
    /// default 16: there a pass costs about its padded tokens, so padding is pure waste and a short pass of
    /// sequences of one length beats a full one padded to the longest). Measured on all-MiniLM-L6-v2: see
    /// docs/PERFORMANCE.md.
    /// </summary>
    public int? PassOverheadTokens { get; init; }

    /// <summary>Sequences per pass on a GPU or on the CPU: <see cref="MaxBatchSequences"/> or the device's default.</summary>
    public int SequencesFor(bool onGpu) => MaxBatchSequences ?? (onGpu ? 256 : 32);

    internal int OverheadFor(bool onGpu) => PassOverheadTokens ?? (onGpu ? 1024 : 16);

    /// <summary><paramref name="options"/> for a session that this batcher's workers drive: the passes they run at once.</summary>
    public EncoderOptions ForSessions(EncoderOptions options) => options with { ConcurrentRuns = Math.Max(1, Workers) };
}

/// <summary>Forward passes run and sequences embedded by a model's batcher.</summary>
public readonly record struct BatchingTotals(long ForwardPasses, long Sequences);

/// <summary>
/// Dynamic batching across callers: the sequences of every pending request for one encoder go into shared forward
/// passes of similar lengths within <see cref="BatchLimits"/>, so that many small requests fill the GPU as one large
/// one would. Fair in arrival order: each pass is anchored on the longest remaining sequence of the oldest request
/// and takes the longest sequences of any request that are no longer than it, as many as the cheapest split of
/// those waiting puts in its first pass (see <see cref="PassSize"/>): full passes on a GPU, passes of near-equal
/// lengths on the CPU. Each request reads its own rows of each pass (pooling for embeddings, token vectors for
/// BERTScore); padding never reaches them, so the results equal those of passes made for the request alone.
/// </summary>
internal sealed class EncoderBatcher : IDisposable
{
    private readonly OnnxEncoder _encoder;
    private readonly int _padId;
    private readonly int _maxBatchTokens;
    private readonly int _maxBatchSequences;
    private readonly int _passOverheadTokens;
    private readonly Lock _gate = new();
    private readonly List<Request> _pending = [];
    private readonly SemaphoreSlim _signal = new(0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread[] _workers;
    private readonly TagList _tags;
    private readonly LoweredPassCap _cap = new();
    private long _forwardPasses;
    private long _sequencesEmbedded;

    /// <param name="tags">The model and task its measurements are tagged with (<see cref="InferenceMetrics.Tags"/>).</param>
    public EncoderBatcher(OnnxEncoder encoder, int padId, BatchLimits limits, TagList tags = default)
    {
        _tags = tags;
        _encoder = encoder;
        _padId = padId;
        _maxBatchTokens = limits.MaxBatchTokens;
        _maxBatchSequences = limits.SequencesFor(encoder.OnGpu);
        _passOverheadTokens = limits.OverheadFor(encoder.OnGpu);
        _workers = [.. Enumerable.Range(0, Math.Max(1, limits.Workers)).Select(i => new Thread(Work) { IsBackground = true, Name = $"encoder-batcher-{i}" })];
        foreach (var worker in _workers)
        {
            worker.Start();
        }
    }

    /// <summary>Forward passes run and sequences embedded so far: their ratio is the batch size achieved.</summary>
    public BatchingTotals Totals => new(Interlocked.Read(ref _forwardPasses), Interlocked.Read(ref _sequencesEmbedded));

    /// <summary>
    /// Runs <paramref name="sequences"/> (token ids with their special tokens) in the next forward passes and hands
    /// each one's hidden states to <paramref name="consume"/> (states, row in the pass, index in
    /// <paramref name="sequences"/>), on a batcher thread, before the pass's states are released.
    /// <paramref name="onProgress"/> hears after each pass that carried some of them, in chunks of
    /// <paramref name="progressChunk"/> sequences.
    /// </summary>
    public Task RunAsync(
        int[][] sequences,
        Action<HiddenStates, int, int> consume,
        int progressChunk,
        Action<BatchProgress>? onProgress,
        CancellationToken cancellationToken)
    {
        if (sequences.Length == 0)
        {
            return Task.CompletedTask;
        }

        cancellationToken.ThrowIfCancellationRequested();
        var request = new Request(sequences, consume, Math.Max(1, progressChunk), onProgress);
        request.Registration = cancellationToken.Register(() => Cancel(request, cancellationToken));
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_stop.IsCancellationRequested, this);
            if (request.Completion.Task.IsCompleted)
            {
                return request.Completion.Task;
            }

            _pending.Add(request);
        }

        _signal.Release();
        return request.Completion.Task;
    }

    private void Work()
    {
        var token = _stop.Token;
        while (!token.IsCancellationRequested)
        {
            var batch = TakeBatch();
            if (batch is null)
            {
                try
                {
                    _signal.Wait(token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                continue;
            }

            Run(batch);
        }
    }

    /// <summary>The next forward pass, or null when nothing waits.</summary>
    private List<(Request Request, int Index)>? TakeBatch()
    {
        lock (_gate)
        {
            _pending.RemoveAll(r => r.Remaining.Count == 0);
            if (_pending.Count == 0)
            {
                return null;
            }

            var anchor = _pending[0];
            var longest = anchor.Sequences[anchor.Remaining[0]].Length;

            // Each request's remaining indices are sorted longest first, so the ones that fit under the anchor's
            // length are a suffix; merge those suffixes longest first, as far as the cheapest split looks.
            var heads = _pending.Select(r => FirstAtMost(r, longest)).ToArray();
            var taken = new int[_pending.Count];
            var window = _maxBatchSequences * SplitWindowPasses;
            var candidates = new List<(int Request, int Length)>(Math.Min(window, 1024));
            while (candidates.Count < window)
            {
                var best = -1;
                var bestLength = -1;
                for (var k = 0; k < _pending.Count; k++)
                {
                    var position = heads[k] + taken[k];
                    if (position < _pending[k].Remaining.Count)
                    {
                        var length = _pending[k].Sequences[_pending[k].Remaining[position]].Length;
                        if (length > bestLength)
                        {
                            best = k;
                            bestLength = length;
                        }
                    }
                }

                if (best < 0)
                {
                    break;
                }

                candidates.Add((best, bestLength));
                taken[best]++;
            }

            var size = PassSize(candidates.ConvertAll(c => c.Length), _maxBatchSequences, _cap.Tokens(_maxBatchTokens), _passOverheadTokens);
            Array.Clear(taken);
            var batch = new List<(Request, int)>(size);
            foreach (var (k, _) in candidates.Take(size))
            {
                batch.Add((_pending[k], _pending[k].Remaining[heads[k] + taken[k]]));
                taken[k]++;
            }

            for (var k = 0; k < _pending.Count; k++)
            {
                _pending[k].Remaining.RemoveRange(heads[k], taken[k]);
            }

            // More is waiting: wake another worker to assemble the next pass while this one runs.
            if (_pending.Any(r => r.Remaining.Count > 0))
            {
                _signal.Release();
            }

            return batch;
        }
    }

    /// <summary>How many passes' worth of waiting sequences <see cref="PassSize"/> weighs when it sizes the next pass.</summary>
    private const int SplitWindowPasses = 4;

    /// <summary>
    /// The size of the first pass of the cheapest split of <paramref name="lengths"/> (sorted longest first) into
    /// passes of consecutive sequences, each within the limits, where a pass costs its padded tokens (sequences × its
    /// first, longest, length) plus <paramref name="overheadTokens"/>. Dynamic programming from the shortest end:
    /// O(lengths × maxSequences).
    /// </summary>
    internal static int PassSize(IReadOnlyList<int> lengths, int maxSequences, int maxTokens, int overheadTokens)
    {
        var n = lengths.Count;
        if (n == 0)
        {
            return 0;
        }

        // cost[i]: the cheapest way to run lengths[i..]; first[i]: the size of its first pass.
        var cost = new long[n + 1];
        var first = new int[n + 1];
        for (var i = n - 1; i >= 0; i--)
        {
            var limit = Batching.Size(lengths[i], maxSequences, maxTokens, n - i);
            cost[i] = long.MaxValue;
            for (var size = 1; size <= limit; size++)
            {
                var total = overheadTokens + ((long)size * lengths[i]) + cost[i + size];
                if (total <= cost[i])
                {
                    // Ties go to the larger pass: fewer passes, earlier results.
                    cost[i] = total;
                    first[i] = size;
                }
            }
        }

        return first[0];
    }

    private static int FirstAtMost(Request request, int length)
    {
        var remaining = request.Remaining;
        var position = 0;
        while (position < remaining.Count && request.Sequences[remaining[position]].Length > length)
        {
            position++;
        }

        return position;
    }

    private void Run(List<(Request Request, int Index)> batch)
    {
        var started = Stopwatch.GetTimestamp();
        foreach (var request in batch.Select(b => b.Request).Distinct())
        {
            if (Interlocked.Exchange(ref request.Started, 1) == 0)
            {
                InferenceMetrics.QueueSeconds.Record(Stopwatch.GetElapsedTime(request.Enqueued, started).TotalSeconds, _tags);
            }
        }

        var sequences = batch.Select(b => b.Request.Sequences[b.Index]).ToList();
        try
        {
            var splits = PassSplitting.Run(
                _encoder,
                sequences,
                _padId,
                (states, offset) =>
                {
                    for (var k = 0; k < states.Batch; k++)
                    {
                        var (request, index) = batch[offset + k];
                        request.Consume(states, k, index);
                    }
                },
                (position, error) =>
                {
                    InferenceMetrics.OutOfMemoryRefusals.Add(1, _tags);
                    Fail(batch[position].Request, error);
                });
            RecordPass(sequences, started);
            if (splits > 0)
            {
                InferenceMetrics.OutOfMemorySplits.Add(splits, _tags);
                _cap.Lower(sequences.Count, sequences.Max(s => s.Length));
            }
        }
        catch (Exception ex)
        {
            foreach (var request in batch.Select(b => b.Request).Distinct())
            {
                Fail(request, ex);
            }

            return;
        }

        Interlocked.Increment(ref _forwardPasses);
        Interlocked.Add(ref _sequencesEmbedded, batch.Count);
        foreach (var group in batch.GroupBy(b => b.Request))
        {
            group.Key.Finish(group.Count());
        }
    }

    private void RecordPass(List<int[]> sequences, long started)
    {
        long tokens = 0;
        var longest = 0;
        foreach (var sequence in sequences)
        {
            tokens += sequence.Length;
            longest = Math.Max(longest, sequence.Length);
        }

        InferenceMetrics.ForwardSeconds.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, _tags);
        InferenceMetrics.BatchSize.Record(sequences.Count, _tags);
        InferenceMetrics.PaddingRatio.Record(1 - ((double)tokens / ((long)longest * sequences.Count)), _tags);
        InferenceMetrics.Tokens.Add(tokens, _tags);
        InferenceMetrics.PaddedTokens.Add((long)longest * sequences.Count, _tags);
    }

    private void Cancel(Request request, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            _pending.Remove(request);
        }

        request.Completion.TrySetCanceled(cancellationToken);
    }

    private void Fail(Request request, Exception error)
    {
        lock (_gate)
        {
            _pending.Remove(request);
        }

        request.Completion.TrySetException(error);
    }

    public void Dispose()
    {
        List<Request> abandoned;
        lock (_gate)
        {
            if (_stop.IsCancellationRequested)
            {
                return;
            }

            _stop.Cancel();
            abandoned = [.. _pending];
            _pending.Clear();
        }

        foreach (var worker in _workers)
        {
            worker.Join();
        }

        foreach (var request in abandoned)
        {
            request.Completion.TrySetException(new ObjectDisposedException(nameof(EncoderBatcher), "The model was unloaded before the request ran."));
        }

        _signal.Dispose();
        _stop.Dispose();
    }

    private sealed class Request(int[][] sequences, Action<HiddenStates, int, int> consume, int progressChunk, Action<BatchProgress>? onProgress)
    {
        private int _done;

        public int[][] Sequences { get; } = sequences;

        public Action<HiddenStates, int, int> Consume { get; } = consume;

        /// <summary>Indices not yet in a forward pass, longest first (ties in input order).</summary>
        public List<int> Remaining { get; } = [.. Enumerable.Range(0, sequences.Length).OrderByDescending(i => sequences[i].Length)];

        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public CancellationTokenRegistration Registration { get; set; }

        /// <summary>When the request was queued (<see cref="Stopwatch.GetTimestamp"/>).</summary>
        public long Enqueued { get; } = Stopwatch.GetTimestamp();

        /// <summary>1 once a forward pass carried some of the request (its queue time is recorded then).</summary>
        public int Started;

        public void Finish(int count)
        {
            var done = Interlocked.Add(ref _done, count);
            var total = Sequences.Length;
            onProgress?.Invoke(new BatchProgress(done, total, (done + progressChunk - 1) / progressChunk, (total + progressChunk - 1) / progressChunk));
            if (done == total)
            {
                Registration.Dispose();
                Completion.TrySetResult();
            }
        }
    }
}

/// <summary>
/// After the device ran out of memory for a pass, passes are kept to half its padded tokens for a while
/// (<see cref="Hold"/>), so that the next large requests do not fail their first pass again before they split; then
/// the configured limit returns (the memory may have been another process's, gone since).
/// </summary>
internal sealed class LoweredPassCap
{
    public static readonly TimeSpan Hold = TimeSpan.FromMinutes(5);

    private long _tokens = long.MaxValue;
    private long _until;

    /// <summary>The padded tokens a pass may hold now: <paramref name="configured"/>, or less after a recent split.</summary>
    public int Tokens(int configured) =>
        Environment.TickCount64 < Interlocked.Read(ref _until) ? (int)Math.Min(configured, Interlocked.Read(ref _tokens)) : configured;

    /// <summary>A pass of <paramref name="sequences"/> × <paramref name="longest"/> tokens did not fit.</summary>
    public void Lower(int sequences, int longest)
    {
        var half = Math.Max(longest, (long)sequences * longest / 2);
        if (Environment.TickCount64 >= Interlocked.Read(ref _until) || half < Interlocked.Read(ref _tokens))
        {
            Interlocked.Exchange(ref _tokens, half);
        }

        Interlocked.Exchange(ref _until, Environment.TickCount64 + (long)Hold.TotalMilliseconds);
    }
}
