using OrleansGpu.Inference.BertScore;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.BertScore;

/// <summary>One test per bert_score rule, on the real MiniLM.</summary>
[Collection(MiniLmCollection.Name)]
public sealed class BertScoreRuleTests(MiniLmFixture minilm)
{
    private BertScoreResult Score(string[] candidates, string[] references, int layer = 4, bool idf = false) =>
        minilm.BertScore.Score(new BertScoreRequest
        {
            Candidates = candidates,
            References = BertScoreRequest.Single(references),
            NumLayers = layer,
            Idf = idf,
        });

    [Fact]
    public void Identical_texts_score_one()
    {
        var r = Score(["The cat sat on the mat."], ["The cat sat on the mat."]);
        Assert.Equal(1f, r.F1[0], 1e-5f);
        Assert.Equal(1f, r.Precision[0], 1e-5f);
    }

    [Fact]
    public void Texts_are_stripped_first() =>
        Assert.Equal(Score(["a dog runs"], ["the dog ran"]).F1, Score(["  a dog runs \n"], ["\tthe dog ran\u001f"]).F1);

    [Fact]
    public void An_empty_or_blank_side_scores_zero()
    {
        var r = Score(["", "   ", "A reference sentence."], ["A reference sentence.", "Something.", "  "]);
        Assert.All(r.Precision, v => Assert.Equal(0f, v));
        Assert.All(r.Recall, v => Assert.Equal(0f, v));
        Assert.All(r.F1, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Candidate_of_only_special_tokens_has_undefined_precision_and_zero_f1_like_bert_score()
    {
        var r = Score(["[CLS]"], ["A reference."]);
        Assert.True(float.IsNaN(r.Precision[0]));
        Assert.Equal(0f, r.F1[0]);
    }

    [Fact]
    public void Accents_make_no_difference_to_an_uncased_model() =>
        Assert.Equal(1f, Score(["café naïve"], ["cafe naive"]).F1[0], 1e-5f);

    [Fact]
    public void Default_layer_is_the_last_for_models_bert_score_does_not_list()
    {
        Assert.Equal(6, minilm.BertScore.DefaultLayer);
        var r = minilm.BertScore.Score(new BertScoreRequest { Candidates = ["x y"], References = BertScoreRequest.Single(["x z"]) });
        Assert.Equal(6, r.NumLayers);
        Assert.StartsWith("sentence-transformers/all-MiniLM-L6-v2_L6_no-idf_", r.Hash);
    }

    [Fact]
    public void Known_models_use_bert_scores_layer_table()
    {
        Assert.Equal(40, BertScoreDefaults.DefaultLayer("microsoft/deberta-xlarge-mnli"));
        Assert.Equal(17, BertScoreDefaults.DefaultLayer("roberta-large"));
        Assert.Equal(17, BertScoreDefaults.DefaultLayer("FacebookAI/roberta-large"));
        Assert.Equal(18, BertScoreDefaults.DefaultLayer("microsoft/deberta-large-mnli"));
        Assert.Equal(9, BertScoreDefaults.DefaultLayer("bert-base-uncased"));
        Assert.Equal(5, BertScoreDefaults.DefaultLayer("distilbert-base-uncased"));
        Assert.Null(BertScoreDefaults.DefaultLayer("sentence-transformers/all-MiniLM-L6-v2"));
    }

    [Fact]
    public void Only_roberta_and_gpt2_tokenizers_get_a_prefix_space()
    {
        Assert.True(BertScoreDefaults.AddsPrefixSpace("roberta"));
        Assert.True(BertScoreDefaults.AddsPrefixSpace("gpt2"));
        Assert.False(BertScoreDefaults.AddsPrefixSpace("deberta"));
        Assert.False(BertScoreDefaults.AddsPrefixSpace("bert"));
    }

    [Fact]
    public void Layer_zero_is_the_embedding_output_and_layers_differ()
    {
        var l0 = Score(["The quick brown fox."], ["A fast brown fox."], layer: 0).F1[0];
        var l4 = Score(["The quick brown fox."], ["A fast brown fox."], layer: 4).F1[0];
        Assert.NotEqual(l0, l4);
    }

    [Fact]
    public void Layers_outside_the_model_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Score(["a"], ["b"], layer: 7));
        Assert.Throws<ArgumentOutOfRangeException>(() => Score(["a"], ["b"], layer: -1));
    }

    [Fact]
    public void Unequal_candidate_and_reference_counts_are_refused() =>
        Assert.Throws<ArgumentException>(() => minilm.BertScore.Score(new BertScoreRequest
        {
            Candidates = ["a", "b"],
            References = BertScoreRequest.Single(["a"]),
        }));

    [Fact]
    public void Idf_weights_come_from_the_references_of_the_call()
    {
        string[] candidates = ["the cat sat", "a dog barked loudly"];
        string[] references = ["the cat sat down", "the dog barked"];
        var withIdf = Score(candidates, references, idf: true);
        var without = Score(candidates, references);
        Assert.NotEqual(without.F1[0], withIdf.F1[0]);

        // Adding a pair changes the reference set, so the idf (and the scores of the first pair) change.
        var more = Score([.. candidates, "x"], [.. references, "a cat"], idf: true);
        Assert.NotEqual(withIdf.Precision[0], more.Precision[0]);
    }

    [Fact]
    public void Idf_formula_is_log_of_m_plus_one_over_df_plus_one()
    {
        var weights = TokenWeights.InverseDocumentFrequency([[101, 7, 8, 102], [101, 7, 102], [101, 9, 102]]);
        Assert.Equal((float)Math.Log(4.0 / 3.0), weights[7], 1e-7f);
        Assert.Equal((float)Math.Log(4.0 / 2.0), weights[8], 1e-7f);
        Assert.Equal(0f, weights[101]);
        Assert.Equal((float)Math.Log(4.0), weights[12345], 1e-7f);
    }

    [Fact]
    public void Without_idf_start_and_end_tokens_weigh_zero_and_the_rest_one()
    {
        var weights = TokenWeights.Uniform(minilm.BertScore.Tokenizer.Special);
        Assert.Equal(0f, weights[101]);
        Assert.Equal(0f, weights[102]);
        Assert.Equal(1f, weights[103]);
        Assert.Equal(1f, weights[2000]);
    }

    [Fact]
    public void Multi_reference_max_is_taken_per_metric()
    {
        var candidate = "The company reported higher profits this year.";
        string[] refs = ["Profits at the company rose this year.", "The weather was cold."];
        var each = Score([candidate, candidate], refs);
        var multi = minilm.BertScore.Score(new BertScoreRequest { Candidates = [candidate], References = [refs], NumLayers = 4 });
        Assert.Equal(Math.Max(each.Precision[0], each.Precision[1]), multi.Precision[0], 1e-6f);
        Assert.Equal(Math.Max(each.Recall[0], each.Recall[1]), multi.Recall[0], 1e-6f);
        Assert.Equal(Math.Max(each.F1[0], each.F1[1]), multi.F1[0], 1e-6f);
    }

    [Fact]
    public void Rescaling_applies_x_minus_b_over_one_minus_b()
    {
        var raw = Score(["a small test"], ["a little test"]);
        var baseline = new Baseline(0.5f, 0.6f, 0.55f);
        var rescaled = minilm.BertScore.Score(new BertScoreRequest
        {
            Candidates = ["a small test"],
            References = BertScoreRequest.Single(["a little test"]),
            NumLayers = 4,
            RescaleWithBaseline = true,
            Baseline = baseline,
        });
        Assert.Equal((raw.Precision[0] - 0.5f) / 0.5f, rescaled.Precision[0], 1e-6f);
        Assert.Equal((raw.Recall[0] - 0.6f) / 0.4f, rescaled.Recall[0], 1e-6f);
        Assert.Equal((raw.F1[0] - 0.55f) / 0.45f, rescaled.F1[0], 1e-6f);
        Assert.EndsWith("-custom-rescaled", rescaled.Hash);
    }

    [Fact]
    public void Rescaling_without_a_known_baseline_is_a_clear_error() =>
        Assert.Throws<BaselineNotFoundException>(() => minilm.BertScore.Score(new BertScoreRequest
        {
            Candidates = ["a"],
            References = BertScoreRequest.Single(["b"]),
            RescaleWithBaseline = true,
        }));

    [Fact]
    public void Shipped_baselines_are_bert_scores_rows()
    {
        var deberta = Baseline.ForModel("en", "microsoft/deberta-xlarge-mnli", 40);
        Assert.Equal(new Baseline(0.5169066f, 0.5170288f, 0.5150192f), deberta);
        var roberta = Baseline.ForModel("en", "roberta-large", 17);
        Assert.Equal(new Baseline(0.83150584f, 0.8314941f, 0.83122575f), roberta);
        Assert.True(Baseline.Exists("en", "bert-base-uncased"));
        Assert.False(Baseline.Exists("de", "bert-base-uncased"));
    }

    [Fact]
    public void Hash_follows_bert_scores_format()
    {
        Assert.Equal("roberta-large_L17_no-idf_version=0.3.12(hug_trans=5.17.0)", BertScoreModel.Hash("roberta-large", 17, false, false, false));
        Assert.Equal("m_L4_idf_version=0.3.12(hug_trans=5.17.0)-rescaled", BertScoreModel.Hash("m", 4, true, true, false));
    }

    [Fact]
    public void Texts_longer_than_the_model_maximum_are_truncated_not_refused()
    {
        var longText = string.Join(' ', Enumerable.Repeat("word", 700));
        Assert.Equal(512, minilm.BertScore.Encode(longText).Length);
        var r = Score([longText], [longText]);
        Assert.Equal(1f, r.F1[0], 1e-5f);
    }
}
