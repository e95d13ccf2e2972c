using OrleansGpu.Inference.BertScore;
using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Inference.Onnx;
using OrleansGpu.Tests.Inference.BertScore;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Onnx;

/// <summary>
/// A device out of memory for a pass: the pass runs again in halves, down to one sequence, and the session lives on.
/// The CPU cannot run out of device memory, so ONNX Runtime's own out-of-memory error is injected at the session seam
/// (<see cref="IPassRunner"/>) for passes above a size; everything else is the real model.
/// </summary>
[Collection(MiniLmCollection.Name)]
public sealed class PassSplittingTests(MiniLmFixture minilm)
{
    [Fact]
    public async Task Embeddings_split_on_out_of_memory_equal_the_unsplit_ones_and_sentence_transformers_injected_at_session_seam_cpu_stand_in()
    {
        var ct = TestContext.Current.CancellationToken;
        var oracle = Oracles.Embed;
        var faults = new InjectedPassFaults(SessionPassRunner.Instance) { OutOfMemoryAboveTokens = 300 };
        using var model = EmbeddingModel.Load(minilm.Folder, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions with { PassRunner = faults });
        var sequences = model.Tokenize(oracle.Texts);
        Assert.Contains(sequences, s => s.Length > 20); // passes of many such texts exceed 300 padded tokens

        var split = await model.EmbedAsync(sequences, normalize: null, cancellationToken: ct);
        var unsplit = await minilm.Embedding.EmbedAsync(minilm.Embedding.Tokenize(oracle.Texts), normalize: null, cancellationToken: ct);

        Assert.True(faults.Injected > 0, "no pass ran out of memory: the test tested nothing");
        Assert.True(MaxDelta(split, unsplit) <= 1e-6, $"split against unsplit: {MaxDelta(split, unsplit):E2}");
        Assert.True(MaxDelta(split, [.. oracle.Embeddings.SelectMany(e => e)]) <= 1e-5);

        // The session lives on: the next call (passes now capped below the size that failed) runs without a new failure.
        var before = faults.Injected;
        var again = await model.EmbedAsync(sequences, normalize: null, cancellationToken: ct);
        Assert.True(MaxDelta(split, again) <= 1e-6);
        Assert.True(faults.Injected - before < before, "the lowered pass cap did not avoid failing passes again");
    }

    [Fact]
    public async Task Bertscore_split_on_out_of_memory_equals_the_unsplit_scores_and_bert_score_injected_at_session_seam_cpu_stand_in()
    {
        var ct = TestContext.Current.CancellationToken;
        var faults = new InjectedPassFaults(SessionPassRunner.Instance) { OutOfMemoryAboveTokens = 600 };
        using var model = new BertScoreModel(minilm.Folder, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions with { PassRunner = faults });
        foreach (var run in new[] { "L4_idf", "L6_noidf" })
        {
            var expected = Oracles.BertScore.Runs[run];
            var split = await model.ScoreAsync(BertScoreOracleTests.RequestFor(run), cancellationToken: ct);
            var unsplit = await minilm.BertScore.ScoreAsync(BertScoreOracleTests.RequestFor(run), cancellationToken: ct);

            Assert.True(MaxDelta(split.F1, unsplit.F1) <= 1e-6 && MaxDelta(split.Precision, unsplit.Precision) <= 1e-6 && MaxDelta(split.Recall, unsplit.Recall) <= 1e-6);
            BertScoreOracleTests.AssertClose(expected.F, split.F1, "F");
            BertScoreOracleTests.AssertClose(expected.P, split.Precision, "P");
        }

        Assert.True(faults.Injected > 0, "no pass ran out of memory: the test tested nothing");
    }

    [Fact]
    public async Task A_text_too_large_alone_fails_its_request_only_and_the_model_keeps_serving_injected_at_session_seam_cpu_stand_in()
    {
        var ct = TestContext.Current.CancellationToken;
        var faults = new InjectedPassFaults(SessionPassRunner.Instance) { OutOfMemoryAboveTokens = 40 };
        using var model = EmbeddingModel.Load(minilm.Folder, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions with { PassRunner = faults });
        var longText = string.Join(' ', Enumerable.Repeat("a long sentence that alone will not fit", 10));
        var shortTexts = Enumerable.Range(0, 12).Select(i => $"short text {i}").ToArray();

        var failing = model.EmbedAsync(model.Tokenize([longText, .. shortTexts]), normalize: null, cancellationToken: ct);
        var fine = model.EmbedAsync(model.Tokenize(shortTexts), normalize: null, cancellationToken: ct);

        var error = await Assert.ThrowsAsync<DeviceOutOfMemoryException>(() => failing);
        Assert.Contains("single text", error.Message);
        var vectors = await fine;
        var expected = await minilm.Embedding.EmbedAsync(minilm.Embedding.Tokenize(shortTexts), normalize: null, cancellationToken: ct);
        Assert.True(MaxDelta(vectors, expected) <= 1e-6);
        Assert.True(MaxDelta(vectors, await model.EmbedAsync(model.Tokenize(shortTexts), normalize: null, cancellationToken: ct)) <= 1e-6);
    }

    [Fact]
    public async Task A_pass_that_fails_for_another_reason_is_not_split_but_reported_as_a_pass_failure_injected_at_session_seam_cpu_stand_in()
    {
        var faults = new InjectedPassFaults(SessionPassRunner.Instance) { FailEveryPass = true };
        using var model = EmbeddingModel.Load(minilm.Folder, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions with { PassRunner = faults });
        var texts = Enumerable.Range(0, 8).Select(i => $"text {i}").ToArray();

        var error = await Assert.ThrowsAsync<PassFailedException>(() => model.EmbedAsync(model.Tokenize(texts), normalize: null, cancellationToken: TestContext.Current.CancellationToken));

        Assert.Equal(1, faults.Injected);
        Assert.Contains("illegal memory access", error.Message);
    }

    [Theory]
    [InlineData("Failed to allocate memory for requested buffer of size 1073741824", true)]
    [InlineData("CUDA error cudaErrorMemoryAllocation:out of memory", true)]
    [InlineData("BFCArena::AllocateRawInternal Available memory of 0 is smaller than requested bytes", true)]
    [InlineData("CUBLAS failure 3: CUBLAS_STATUS_ALLOC_FAILED", true)]
    [InlineData("Non-zero status code returned while running Gather node: indices element out of data bounds", false)]
    public void Out_of_memory_is_told_from_other_runtime_errors_by_the_message(string message, bool outOfMemory)
    {
        Assert.Equal(outOfMemory, OutOfDeviceMemory.Is(InjectedPassFaults.OrtError(message)));
        Assert.False(OutOfDeviceMemory.Is(new InvalidOperationException(message)));
    }

    private static double MaxDelta(float[] a, float[] b)
    {
        Assert.Equal(a.Length, b.Length);
        var worst = 0.0;
        for (var i = 0; i < a.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(a[i] - b[i]));
        }

        return worst;
    }
}
