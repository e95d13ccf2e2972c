using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Embeddings;

[Collection(MiniLmCollection.Name)]
public sealed class EmbeddingOracleTests(MiniLmFixture minilm)
{
    private const float Tolerance = 1e-5f;

    [Fact]
    public void Every_oracle_text_embeds_within_1e5_of_sentence_transformers()
    {
        var oracle = Oracles.Embed;
        var dims = minilm.Embedding.Dimensions;
        var embeddings = minilm.Embedding.Embed(oracle.Texts, new EmbedOptions(), cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal(384, dims);
        var worst = 0f;
        var worstText = -1;
        for (var i = 0; i < oracle.Texts.Length; i++)
        {
            for (var d = 0; d < dims; d++)
            {
                var delta = Math.Abs(embeddings[(i * dims) + d] - oracle.Embeddings[i][d]);
                if (delta > worst)
                {
                    worst = delta;
                    worstText = i;
                }
            }
        }

        Assert.True(worst <= Tolerance, $"max |Δ| = {worst:E2} at text #{worstText}");
    }

    [Fact]
    public void The_published_similarity_matrix_is_reproduced()
    {
        string[] texts = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."];
        var e = minilm.Embedding.Embed(texts);
        var dims = minilm.Embedding.Dimensions;
        for (var i = 0; i < 3; i++)
        {
            for (var j = 0; j < 3; j++)
            {
                double dot = 0;
                for (var d = 0; d < dims; d++)
                {
                    dot += e[(i * dims) + d] * e[(j * dims) + d];
                }

                Assert.Equal(Oracles.Embed.ReadmeSimilarity[i][j], dot, 1e-5);
            }
        }
    }

    [Fact]
    public void Normalisation_can_be_turned_off_and_then_only_the_length_changes()
    {
        string[] texts = ["A sentence to embed.", "Another, rather longer sentence to embed twice over."];
        var normalized = minilm.Embedding.Embed(texts);
        var raw = minilm.Embedding.Embed(texts, new EmbedOptions { Normalize = false });
        var dims = minilm.Embedding.Dimensions;
        for (var i = 0; i < texts.Length; i++)
        {
            var row = raw.AsSpan(i * dims, dims);
            double norm = 0;
            foreach (var v in row)
            {
                norm += v * v;
            }

            norm = Math.Sqrt(norm);
            Assert.NotEqual(1.0, norm, 1e-3);
            for (var d = 0; d < dims; d++)
            {
                Assert.Equal(normalized[(i * dims) + d], row[d] / norm, 1e-6);
            }
        }
    }

    [Fact]
    public void Texts_over_the_maximum_are_truncated_at_256_tokens_or_refused_when_truncation_is_off()
    {
        var longText = string.Join(' ', Enumerable.Repeat("token", 400));
        var tokens = minilm.Embedding.Tokenize([longText]);
        Assert.Equal(256, tokens[0].Length);

        var truncated = minilm.Embedding.Embed([longText]);
        var cut = minilm.Embedding.Embed([string.Join(' ', Enumerable.Repeat("token", 254))]);
        Assert.Equal(cut, truncated);

        var error = Assert.Throws<InputTooLongException>(() => minilm.Embedding.Embed(["short", longText], new EmbedOptions { Truncate = false }));
        Assert.Equal(1, error.Index);
        Assert.Equal(256, error.MaxTokens);
    }

    [Fact]
    public void Batch_size_and_order_do_not_change_the_vectors()
    {
        var texts = Oracles.Embed.Texts.Take(50).ToArray();
        var byOne = minilm.Embedding.Embed(texts, new EmbedOptions { BatchSize = 1 });
        var byAll = minilm.Embedding.Embed(texts, new EmbedOptions { BatchSize = 64 });
        for (var k = 0; k < byOne.Length; k++)
        {
            Assert.Equal(byOne[k], byAll[k], 1e-5f);
        }
    }

    [Fact]
    public void Concurrent_callers_get_the_same_vectors_as_one_caller()
    {
        var texts = Oracles.Embed.Texts.Skip(100).Take(24).ToArray();
        var expected = minilm.Embedding.Embed(texts);
        var results = new float[8][];
        Parallel.For(0, results.Length, i => results[i] = minilm.Embedding.Embed(texts, new EmbedOptions { BatchSize = 5 + i }));
        foreach (var result in results)
        {
            for (var k = 0; k < expected.Length; k++)
            {
                Assert.Equal(expected[k], result[k], 1e-5f);
            }
        }
    }

    [Fact]
    public void Progress_is_reported_after_every_batch()
    {
        var texts = Enumerable.Range(0, 10).Select(i => $"sentence number {i}").ToArray();
        var reports = new List<BatchProgress>();
        minilm.Embedding.Embed(texts, new EmbedOptions { BatchSize = 4 }, reports.Add);
        Assert.Equal([new(4, 10, 1, 3), new(8, 10, 2, 3), new(10, 10, 3, 3)], reports);
    }

    [Fact]
    public void Long_texts_go_in_smaller_batches_within_the_token_budget()
    {
        var texts = Enumerable.Range(0, 6).Select(i => string.Join(' ', Enumerable.Repeat($"word{i}", 300))).ToArray();
        var reports = new List<BatchProgress>();
        var budgeted = minilm.Embedding.Embed(texts, new EmbedOptions { BatchSize = 32, MaxBatchTokens = 600 }, reports.Add);
        Assert.Equal(3, reports.Count); // 256 tokens each: two per 600-token batch
        var unbudgeted = minilm.Embedding.Embed(texts);
        for (var k = 0; k < budgeted.Length; k++)
        {
            Assert.Equal(unbudgeted[k], budgeted[k], 1e-5f);
        }
    }

    [Fact]
    public void No_texts_give_no_vectors() => Assert.Empty(minilm.Embedding.Embed([]));
}
