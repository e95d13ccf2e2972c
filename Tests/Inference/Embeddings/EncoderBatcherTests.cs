using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Embeddings;

/// <summary>Dynamic batching: concurrent callers share forward passes and still get their own exact vectors.</summary>
[Collection(MiniLmCollection.Name)]
public sealed class EncoderBatcherTests(MiniLmFixture minilm)
{
    private static readonly string[] Words = ["the", "market", "report", "police", "children", "season", "water", "energy", "history", "museum"];

    [Fact]
    public async Task Concurrent_callers_get_the_same_vectors_as_one_caller_alone()
    {
        using var model = EmbeddingModel.Load(minilm.Folder, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions, new BatchLimits { MaxBatchSequences = 8 });
        var random = new Random(3);
        var requests = Enumerable.Range(0, 12).Select(r => Enumerable.Range(0, 1 + random.Next(6))
            .Select(_ => string.Join(' ', Enumerable.Range(0, 1 + random.Next(40)).Select(_ => Words[random.Next(Words.Length)])))
            .ToArray()).ToArray();

        var results = await Task.WhenAll(requests.Select((texts, r) =>
            model.EmbedAsync(model.Tokenize(texts), normalize: r % 2 == 0, cancellationToken: TestContext.Current.CancellationToken)));

        for (var r = 0; r < requests.Length; r++)
        {
            var alone = minilm.Embedding.Embed(requests[r], new EmbedOptions { Normalize = r % 2 == 0 });
            Assert.Equal(alone.Length, results[r].Length);
            for (var k = 0; k < alone.Length; k++)
            {
                Assert.Equal(alone[k], results[r][k], 1e-5f);
            }
        }
    }

    [Fact]
    public async Task Many_small_requests_share_forward_passes()
    {
        using var model = EmbeddingModel.Load(minilm.Folder, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions, new BatchLimits { MaxBatchSequences = 64 });
        var sequences = model.Tokenize(["a short sentence about the weather"]);
        await Task.WhenAll(Enumerable.Range(0, 40).Select(_ =>
            model.EmbedAsync(sequences, normalize: true, cancellationToken: TestContext.Current.CancellationToken)));

        var totals = model.BatchingTotals;
        Assert.Equal(40, totals.Sequences);
        Assert.InRange(totals.ForwardPasses, 1, 10);
    }

    [Fact]
    public async Task A_pass_never_exceeds_the_sequence_limit()
    {
        // One worker, so that the passes (and their progress reports) come in order.
        using var model = EmbeddingModel.Load(minilm.Folder, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions, new BatchLimits { MaxBatchSequences = 4, Workers = 1 });
        var sequences = model.Tokenize([.. Enumerable.Range(0, 10).Select(i => $"sentence number {i}")]);
        var reports = new List<BatchProgress>();
        await model.EmbedAsync(sequences, normalize: true, progressChunk: 5, onProgress: reports.Add, cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal(3, model.BatchingTotals.ForwardPasses);
        Assert.Equal([new(4, 10, 1, 2), new(8, 10, 2, 2), new(10, 10, 2, 2)], reports);
    }

    [Fact]
    public async Task A_cancelled_request_ends_cancelled_and_the_others_complete()
    {
        using var model = EmbeddingModel.Load(minilm.Folder, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions, new BatchLimits { MaxBatchSequences = 2 });
        var sequences = model.Tokenize([.. Enumerable.Range(0, 40).Select(i => $"a longer sentence that takes a while, number {i}")]);
        using var cancel = new CancellationTokenSource();
        var first = model.EmbedAsync(sequences, normalize: true, cancellationToken: TestContext.Current.CancellationToken);
        var cancelled = model.EmbedAsync(sequences, normalize: true, cancellationToken: cancel.Token);
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Assert.Equal(40 * 384, (await first).Length);
    }

    [Fact]
    public async Task No_sequences_give_no_vectors() =>
        Assert.Empty(await minilm.Embedding.EmbedAsync([], normalize: true, cancellationToken: TestContext.Current.CancellationToken));
}
