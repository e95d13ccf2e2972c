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
    public void On_the_CPU_a_long_text_runs_alone_instead_of_padding_a_pass_of_short_ones()
    {
        // Sorted longest first, as the batcher hands them: one text of 256 tokens, 40 of about 20.
        int[] lengths = [256, .. Enumerable.Range(0, 40).Select(i => 30 - (i / 4))];
        Assert.Equal(1, EncoderBatcher.PassSize(lengths, maxSequences: 32, maxTokens: 16_384, overheadTokens: 16));

        // Without the long one, texts of near-equal length share passes.
        var rest = lengths[1..];
        var size = EncoderBatcher.PassSize(rest, maxSequences: 32, maxTokens: 16_384, overheadTokens: 16);
        Assert.InRange(size, 4, 32);
        Assert.True(rest[size - 1] >= rest[0] - 3, $"a pass of {size} pads {rest[0]} tokens down to {rest[size - 1]}");
    }

    [Fact]
    public void On_a_GPU_passes_fill_up_unless_padding_would_cost_more_than_a_pass()
    {
        int[] shortTexts = [.. Enumerable.Range(0, 300).Select(_ => 20)];
        Assert.Equal(256, EncoderBatcher.PassSize(shortTexts, maxSequences: 256, maxTokens: 16_384, overheadTokens: 1024));

        // Texts of 30 down to 11 tokens: still passes of well over a hundred, a few tokens of padding each.
        int[] varied = [.. Enumerable.Range(0, 300).Select(i => 30 - (i / 15))];
        Assert.InRange(EncoderBatcher.PassSize(varied, maxSequences: 256, maxTokens: 16_384, overheadTokens: 1024), 100, 256);

        // A long text with 255 short ones: padding them all to 256 tokens would cost far more than a second pass.
        int[] mixed = [256, .. Enumerable.Range(0, 255).Select(_ => 20)];
        Assert.Equal(1, EncoderBatcher.PassSize(mixed, maxSequences: 256, maxTokens: 1 << 20, overheadTokens: 1024));

        // The token limit holds whatever the cost: 16,384 / 200 = 81 texts of 200 tokens.
        int[] longTexts = [.. Enumerable.Range(0, 300).Select(_ => 200)];
        Assert.Equal(81, EncoderBatcher.PassSize(longTexts, maxSequences: 256, maxTokens: 16_384, overheadTokens: 1024));
    }

    [Fact]
    public async Task Passes_sized_by_cost_give_the_same_vectors_and_fewer_padded_tokens()
    {
        // One long text and many short ones in one request, CPU defaults (passes of at most 32, overhead 16 tokens).
        using var model = EmbeddingModel.Load(minilm.Folder, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions, new BatchLimits { Workers = 1 });
        var random = new Random(5);
        string[] texts = [
            string.Join(' ', Enumerable.Range(0, 180).Select(_ => Words[random.Next(Words.Length)])),
            .. Enumerable.Range(0, 40).Select(_ => string.Join(' ', Enumerable.Range(0, 3 + random.Next(12)).Select(_ => Words[random.Next(Words.Length)]))),
        ];

        var batched = await model.EmbedAsync(model.Tokenize(texts), normalize: true, cancellationToken: TestContext.Current.CancellationToken);

        var alone = minilm.Embedding.Embed(texts, new EmbedOptions { Normalize = true, BatchSize = 1 });
        Assert.Equal(alone.Length, batched.Length);
        for (var k = 0; k < alone.Length; k++)
        {
            Assert.Equal(alone[k], batched[k], 1e-5f);
        }

        // The long text ran in a pass of its own: more passes than the two that filling 32 at a time would make.
        Assert.True(model.BatchingTotals.ForwardPasses > 2, $"{model.BatchingTotals.ForwardPasses} passes");
    }

    [Fact]
    public async Task No_sequences_give_no_vectors() =>
        Assert.Empty(await minilm.Embedding.EmbedAsync([], normalize: true, cancellationToken: TestContext.Current.CancellationToken));
}
