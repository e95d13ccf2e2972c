using System.Diagnostics;
using OrleansGpu.Inference.Diagnostics;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Inference.Embeddings;

/// <summary>How large the forward passes that <see cref="EncoderBatcher"/> assembles may be.</summary>
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
    /// Forward passes in flight at once, each on its own thread over the same session (default 2): while one pass
    /// runs, the other's results are pooled and the next is assembled.
    /// </summary>
    public int Workers { get; init; } = 2;

    internal int SequencesFor(bool onGpu) => MaxBatchSequences ?? (onGpu ? 256 : 32);
}

/// <summary>Forward passes run and sequences embedded by a model's batcher.</summary>
public readonly record struct BatchingTotals(long ForwardPasses, long Sequences);

/// <summary>
/// Dynamic batching across callers: the sequences of every pending request for one encoder go into shared forward
/// passes of similar lengths within <see cref="BatchLimits"/>, so that many small requests fill the GPU as one large
/// one would. Fair in arrival order: each pass is anchored on the longest remaining sequence of the oldest request
/// and filled with the longest sequences of any request that are no longer than it (no extra padding). Each
/// request reads its own rows of each pass (pooling for embeddings, token vectors for BERTScore); padding never
/// reaches them, so the results equal those of passes made for the request alone.
/// </summary>
internal sealed class EncoderBatcher : IDisposable
{
    private readonly OnnxEncoder _encoder;
    private readonly int _padId;
    private readonly int _maxBatchTokens;
    private readonly int _maxBatchSequences;
    private readonly Lock _gate = new();
    private readonly List<Request> _pending = [];
    private readonly SemaphoreSlim _signal = new(0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread[] _workers;
    private readonly TagList _tags;
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
            var size = Batching.Size(longest, _maxBatchSequences, _maxBatchTokens, int.MaxValue);

            // Each request's remaining indices are sorted longest first, so the ones that fit under the anchor's
            // length are a suffix; merge those suffixes longest first.
            var heads = _pending.Select(r => FirstAtMost(r, longest)).ToArray();
            var taken = new int[_pending.Count];
            var batch = new List<(Request, int)>(size);
            while (batch.Count < size)
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

                batch.Add((_pending[best], _pending[best].Remaining[heads[best] + taken[best]]));
                taken[best]++;
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

        try
        {
            var sequences = batch.Select(b => b.Request.Sequences[b.Index]).ToList();
            using var states = _encoder.Run(sequences, _padId);
            RecordPass(sequences, started);
            for (var k = 0; k < batch.Count; k++)
            {
                var (request, index) = batch[k];
                request.Consume(states, k, index);
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
