using System.Runtime.ExceptionServices;
using Microsoft.Extensions.Options;
using OrleansGpu.Api.Routing;
using OrleansGpu.Grains;

namespace OrleansGpu.Api.Scatter;

/// <summary>
/// Runs a compute request on the cluster: whole on one host when it is small or there is one host, else split into
/// parts (<see cref="SplitPlan"/>, <see cref="SplitOptions"/>) that run on several hosts at once and are gathered in
/// the request's order. A layer above the router: each part is an ordinary <see cref="HostRouter.ExecuteAsync"/> call
/// with its own least-busy choice and its own failover (a part whose host fails is sent again, alone), and an ordinary
/// job in its host's queue, so a split request waits its turn beside everyone else's. The first part that fails for
/// good cancels the others and is the request's error; cancelling the request cancels every part on its host.
/// </summary>
public sealed class ScatterGather(HostRouter router, IOptions<SplitOptions> options, ILogger<ScatterGather> logger)
{
    private readonly int _minTexts = options.Value.MinTexts;

    /// <summary>Embeds the texts. The batch's <see cref="EmbeddingBatch.Host"/> names each part's host, in order, comma-separated.</summary>
    public async Task<EmbeddingBatch> EmbedAsync(EmbedWork work, CancellationToken requestAborted)
    {
        var texts = work.Texts;
        var parts = await PlanAsync(texts.Count, canCut: null, requestAborted);
        if (parts.Count == 1)
        {
            return await router.ExecuteAsync(new HostWork(WorkSize.Tokens(texts), work.Model, ModelUse.Embedding, work.Precision), (host, ct) => host.EmbedAsync(work, ct), requestAborted);
        }

        var request = NewRequestId();
        var batches = await GatherAsync<EmbeddingBatch>(request, "embed", parts, (range, part) =>
        {
            var slice = range.Of(texts);
            var partWork = work with { Texts = slice, Part = part };
            return (new HostWork(WorkSize.Tokens(slice), work.Model, ModelUse.Embedding, work.Precision), (host, ct) => host.EmbedAsync(partWork, ct));
        }, requestAborted);

        var dimensions = batches[0].Dimensions;
        if (batches.Any(b => b.Dimensions != dimensions))
        {
            throw new InvalidOperationException(
                $"The hosts disagree on {work.Model}'s dimensions ({string.Join(", ", batches.Select(b => $"{b.Host}: {b.Dimensions}"))}); is the same model installed on each?");
        }

        var vectors = new byte[batches.Sum(b => (long)b.Vectors.Length)];
        var offset = 0;
        foreach (var batch in batches)
        {
            batch.Vectors.CopyTo(vectors, offset);
            offset += batch.Vectors.Length;
        }

        return new EmbeddingBatch(
            work.Model, texts.Count, dimensions, vectors, Hosts(batches.Select(b => b.Host)), batches.Sum(b => b.Tokens), Precision(batches.Select(b => b.ComputePrecision)));
    }

    /// <summary>
    /// Scores the pairs. Parts start at a multiple of <see cref="BertScoreWork.MatchingChunk"/> pairs and keep each
    /// candidate's references together, so each pair is matched within the chunk it has in the whole request; with
    /// idf, the weights of the whole request's references are computed once, by a host, and sent with every part.
    /// </summary>
    public async Task<BertScoreScores> BertScoreAsync(BertScoreWork work, CancellationToken requestAborted)
    {
        var pairsBefore = new int[work.Candidates.Count + 1];
        for (var i = 0; i < work.References.Count; i++)
        {
            pairsBefore[i + 1] = pairsBefore[i] + work.References[i].Count;
        }

        var parts = await PlanAsync(work.Candidates.Count, c => pairsBefore[c] % BertScoreWork.MatchingChunk == 0, requestAborted);
        if (parts.Count == 1)
        {
            return await router.ExecuteAsync(new HostWork(Tokens(work.Candidates, work.References), work.Model, ModelUse.BertScore, work.Precision), (host, ct) => host.BertScoreAsync(work, ct), requestAborted);
        }

        var request = NewRequestId();
        IdfTable? idf = null;
        if (work.Idf)
        {
            var idfWork = new IdfWork(work.Model, work.References, work.Precision);
            idf = await router.ExecuteAsync(new HostWork(0, work.Model, ModelUse.BertScore, work.Precision), (host, ct) => host.BertScoreIdfAsync(idfWork, ct), requestAborted);
            logger.LogDebug("Request {Request}: idf weights of {References} references, {Tokens} token ids", request, pairsBefore[^1], idf.TokenIds.Length);
        }

        var scores = await GatherAsync<BertScoreScores>(request, "bertscore", parts, (range, part) =>
        {
            var candidates = range.Of(work.Candidates);
            var references = range.Of(work.References);
            var partWork = work with { Candidates = candidates, References = references, IdfWeights = idf, Part = part };
            return (new HostWork(Tokens(candidates, references), work.Model, ModelUse.BertScore, work.Precision), (host, ct) => host.BertScoreAsync(partWork, ct));
        }, requestAborted);

        return new BertScoreScores(
            work.Model,
            [.. scores.SelectMany(s => s.Precision)],
            [.. scores.SelectMany(s => s.Recall)],
            [.. scores.SelectMany(s => s.F1)],
            scores[0].NumLayers,
            scores[0].Hash,
            Hosts(scores.Select(s => s.Host)),
            Precision(scores.Select(s => s.ComputePrecision)));
    }

    /// <summary>
    /// The precision of a split request: its parts' when they agree; else each part's in order, comma-separated (hosts
    /// of one cluster may differ: fp16 asked, a CPU host answers its part in fp32).
    /// </summary>
    private static string Precision(IEnumerable<string> parts)
    {
        var list = parts.ToList();
        return list.Distinct(StringComparer.Ordinal).Count() == 1 ? list[0] : string.Join(',', list);
    }

    private static long Tokens(IReadOnlyList<string> candidates, IReadOnlyList<IReadOnlyList<string>> references) =>
        WorkSize.Tokens(candidates) + references.Sum(WorkSize.Tokens);

    private async Task<IReadOnlyList<PartRange>> PlanAsync(int count, Func<int, bool>? canCut, CancellationToken cancellationToken)
    {
        if (_minTexts > 0 && count >= 2 * _minTexts && router.Hosts.Count == 0)
        {
            await router.RefreshAsync(cancellationToken); // the host list is read before the router's first request
        }

        return SplitPlan.Parts(count, router.Hosts.Count, _minTexts, canCut);
    }

    /// <summary>
    /// Runs every part at once, each through the router, and returns their answers in part order. The parts are
    /// sent one after another before any answer comes, so each least-busy choice counts the parts already sent.
    /// </summary>
    private async Task<T[]> GatherAsync<T>(
        string request,
        string type,
        IReadOnlyList<PartRange> ranges,
        Func<PartRange, RequestPart, (HostWork Work, Func<IGpuHostGrain, CancellationToken, Task<T>> Call)> part,
        CancellationToken requestAborted)
    {
        var items = ranges.Sum(r => r.Count);
        logger.LogInformation("[{Type}] request={Request}: {Items} items split in {Parts} parts ({Sizes})", type, request, items, ranges.Count, string.Join(", ", ranges.Select(r => r.Count)));
        using var gather = CancellationTokenSource.CreateLinkedTokenSource(requestAborted);
        Exception? firstFailure = null;

        async Task<T> RunAsync(int index)
        {
            var tag = new RequestPart(request, index, ranges.Count, items);
            var (hostWork, call) = part(ranges[index], tag);
            try
            {
                return await router.ExecuteAsync(hostWork, (host, ct) =>
                {
                    logger.LogInformation(
                        "[{Type}] request={Request} part {Part}/{Parts} ({Items} items) → {Host}", type, request, index + 1, ranges.Count, ranges[index].Count, host.GetPrimaryKeyString());
                    return call(host, ct);
                }, gather.Token);
            }
            catch (Exception ex) when (!requestAborted.IsCancellationRequested)
            {
                // The first part that fails for good fails the request: the others stop, on their hosts too.
                if (Interlocked.CompareExchange(ref firstFailure, ex, null) is null)
                {
                    await gather.CancelAsync();
                }

                throw;
            }
        }

        var tasks = Enumerable.Range(0, ranges.Count).Select(RunAsync).ToArray();
        try
        {
            return await Task.WhenAll(tasks);
        }
        catch when (firstFailure is not null)
        {
            ExceptionDispatchInfo.Throw(firstFailure);
            throw;
        }
    }

    private static string NewRequestId() => Guid.NewGuid().ToString("N")[..12];

    private static string Hosts(IEnumerable<string> hosts) => string.Join(",", hosts);
}
