using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;
using OrleansGpu.Api.Http;

namespace OrleansGpu.Api.Contracts;

/// <summary><c>POST /embed</c>: the seed's request, plus <c>normalize</c> and <c>truncate</c>.</summary>
public sealed record EmbedRequest : IValidatableObject
{
    /// <summary>The texts to embed, one vector each, in order.</summary>
    [Required(ErrorMessage = "'texts' is required: an array of strings.")]
    public IReadOnlyList<string?>? Texts { get; init; }

    /// <summary>The model; the default embedding model (<c>MODEL_EMBED</c>) when absent.</summary>
    [StringLength(ModelName.MaxLength, MinimumLength = 1, ErrorMessage = "'model' must be a model name of 1 to 200 characters.")]
    public string? Model { get; init; }

    /// <summary>
    /// L2-normalise each vector, as sentence-transformers' <c>normalize_embeddings</c>; when absent, as the model's own
    /// modules say (normalised when they end with <c>Normalize</c>, as all-MiniLM-L6-v2's do).
    /// </summary>
    public bool? Normalize { get; init; }

    /// <summary>
    /// Cut each text at the model's window (<c>max_seq_length</c>, default true), as sentence-transformers does; when
    /// false a longer text is a 400 <c>input_too_long</c>.
    /// </summary>
    [DefaultValue(true)]
    public bool? Truncate { get; init; }

    /// <summary>
    /// <c>fp32</c> or <c>fp16</c> (float16 weights and products, LayerNorm and softmax in float32: faster on a GPU, within
    /// 1e-3 of fp32); when absent, the host's default for the model (<c>GPU_PRECISION</c>, fp32 unless set). A host
    /// that cannot run fp16 (a CPU host) answers in fp32; the response's <c>precision</c> says which was used.
    /// </summary>
    [AllowedValues("fp32", "fp16", null, ErrorMessage = "'precision' must be fp32 or fp16.")]
    public string? Precision { get; init; }

    public static ValueTask<EmbedRequest?> BindAsync(HttpContext context) => JsonRequest.ReadAsync(context, ApiJson.Default.EmbedRequest);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext) =>
        RequestRules.Texts(Texts, "texts", validationContext);
}

/// <summary><c>POST /bertscore</c>: the seed's request (bert_score's <c>score()</c> arguments), with our extensions.</summary>
public sealed record BertScoreRequest : IValidatableObject
{
    /// <summary>The candidate texts.</summary>
    [Required(ErrorMessage = "'candidates' is required: an array of strings.")]
    public IReadOnlyList<string?>? Candidates { get; init; }

    /// <summary>One reference per candidate (an array of strings), or several (an array of non-empty arrays of strings).</summary>
    [Required(ErrorMessage = "'references' is required: an array of strings, or an array of arrays of strings.")]
    public References? References { get; init; }

    /// <summary>The model, as bert_score names it (<c>model_type</c>); the default BERTScore model when absent.</summary>
    [StringLength(ModelName.MaxLength, MinimumLength = 1, ErrorMessage = "'model_type' must be a model name of 1 to 200 characters.")]
    public string? ModelType { get; init; }

    /// <summary>An alias of <c>model_type</c>.</summary>
    [StringLength(ModelName.MaxLength, MinimumLength = 1, ErrorMessage = "'model' must be a model name of 1 to 200 characters.")]
    public string? Model { get; init; }

    /// <summary>The language of the rescale baseline (default <c>en</c>).</summary>
    [StringLength(16, MinimumLength = 1, ErrorMessage = "'lang' must be a language code of 1 to 16 characters.")]
    public string? Lang { get; init; }

    /// <summary>The layer whose embeddings are compared; bert_score's choice for the model when absent.</summary>
    [Range(0, 1000, ErrorMessage = "'num_layers' must be between 0 and 1000.")]
    public int? NumLayers { get; init; }

    /// <summary>Weigh tokens by inverse document frequency over this request's references (default false).</summary>
    [DefaultValue(false)]
    public bool? Idf { get; init; }

    /// <summary>Rescale with the model's baseline (default false), or with <c>baseline</c> when given.</summary>
    [DefaultValue(false)]
    public bool? RescaleWithBaseline { get; init; }

    /// <summary>Your own baseline for <c>rescale_with_baseline</c>.</summary>
    public BaselineRequest? Baseline { get; init; }

    /// <summary>
    /// <c>fp32</c> or <c>fp16</c> (float16 weights and products, LayerNorm and softmax in float32: faster on a GPU, within
    /// 1e-3 of fp32); when absent, the host's default for the model (<c>GPU_PRECISION</c>, fp32 unless set). A host
    /// that cannot run fp16 (a CPU host) answers in fp32; the response's <c>precision</c> says which was used.
    /// </summary>
    [AllowedValues("fp32", "fp16", null, ErrorMessage = "'precision' must be fp32 or fp16.")]
    public string? Precision { get; init; }

    public static ValueTask<BertScoreRequest?> BindAsync(HttpContext context) => JsonRequest.ReadAsync(context, ApiJson.Default.BertScoreRequest);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        var errors = RequestRules.Texts(Candidates, "candidates", validationContext, countLimit: false).ToList();
        if (errors.Count > 0 || References is null)
        {
            return errors;
        }

        var limits = RequestRules.Limits(validationContext);
        var all = Candidates!.Count + References.Texts;
        if (all > limits.MaxInputs)
        {
            // Counted per request, references included: 100 candidates × 100 references are 10,100 texts, not 100 pairs.
            return [new ValidationResult(
                $"The request holds {all} texts (candidates and references together); at most {limits.MaxInputs} are allowed per request (GPU_MAX_BATCH_SIZE).",
                ["references"])];
        }

        if (Candidates.Count != References.Groups.Count)
        {
            return [new ValidationResult(
                $"'candidates' has {Candidates.Count} items and 'references' has {References.Groups.Count}; they must pair up one to one.", ["references"])];
        }

        return RequestRules.TextLengths(References.Groups.SelectMany(g => g), "references", limits);
    }
}

/// <summary>bert_score's rescale baseline: the scores of unrelated pairs, which rescaling maps to 0.</summary>
public sealed record BaselineRequest
{
    /// <summary>The precision baseline, in [-1, 1): rescaling computes (score − b) / (1 − b).</summary>
    [Required(ErrorMessage = "'baseline.precision' must be a number.")]
    [Range(-1.0, 1.0, MaximumIsExclusive = true, ErrorMessage = "'baseline.precision' must be at least -1 and below 1 (rescaling divides by 1 - b).")]
    public double? Precision { get; init; }

    /// <summary>The recall baseline, in [-1, 1).</summary>
    [Required(ErrorMessage = "'baseline.recall' must be a number.")]
    [Range(-1.0, 1.0, MaximumIsExclusive = true, ErrorMessage = "'baseline.recall' must be at least -1 and below 1 (rescaling divides by 1 - b).")]
    public double? Recall { get; init; }

    /// <summary>The F1 baseline, in [-1, 1).</summary>
    [Required(ErrorMessage = "'baseline.f1' must be a number.")]
    [Range(-1.0, 1.0, MaximumIsExclusive = true, ErrorMessage = "'baseline.f1' must be at least -1 and below 1 (rescaling divides by 1 - b).")]
    public double? F1 { get; init; }
}

/// <summary>OpenAI's <c>POST /v1/embeddings</c> request.</summary>
public sealed record OpenAiEmbeddingsRequest : IValidatableObject
{
    /// <summary>A string, an array of strings, or OpenAI (cl100k_base) token ids: an array of integers or an array of such arrays.</summary>
    [Required(ErrorMessage = "'input' is required: a string, an array of strings, or token ids.")]
    public EmbeddingInput? Input { get; init; }

    /// <summary>The model; the default embedding model when absent.</summary>
    [StringLength(ModelName.MaxLength, MinimumLength = 1, ErrorMessage = "'model' must be a model name of 1 to 200 characters.")]
    public string? Model { get; init; }

    /// <summary><c>float</c> (default) or <c>base64</c> (little-endian float32, what the OpenAI SDKs ask for).</summary>
    [AllowedValues("float", "base64", null, ErrorMessage = "'encoding_format' must be float or base64.")]
    public string? EncodingFormat { get; init; }

    /// <summary>
    /// Fewer dimensions than the model has: the vector is cut to its first <c>dimensions</c> and normalised again, as
    /// OpenAI does. Only models trained for it (Matryoshka) keep their quality when cut.
    /// </summary>
    [Range(1, 65536, ErrorMessage = "'dimensions' must be between 1 and 65536.")]
    public int? Dimensions { get; init; }

    /// <summary>Accepted and ignored, as OpenAI's <c>user</c> field.</summary>
    [StringLength(256, ErrorMessage = "'user' must be at most 256 characters.")]
    public string? User { get; init; }

    /// <summary>
    /// <c>fp32</c> or <c>fp16</c> (float16 weights and products, LayerNorm and softmax in float32: faster on a GPU, within
    /// 1e-3 of fp32); when absent, the host's default for the model (<c>GPU_PRECISION</c>, fp32 unless set). A host
    /// that cannot run fp16 (a CPU host) answers in fp32; the response's <c>precision</c> says which was used.
    /// </summary>
    [AllowedValues("fp32", "fp16", null, ErrorMessage = "'precision' must be fp32 or fp16.")]
    public string? Precision { get; init; }

    public static ValueTask<OpenAiEmbeddingsRequest?> BindAsync(HttpContext context) => JsonRequest.ReadAsync(context, ApiJson.Default.OpenAiEmbeddingsRequest);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (Input is null)
        {
            return [];
        }

        var limits = RequestRules.Limits(validationContext);
        if (Input.Count == 0)
        {
            return [new ValidationResult("'input' must not be empty.", ["input"])];
        }

        if (Input.Count > limits.MaxInputs)
        {
            return [new ValidationResult($"'input' has {Input.Count} items; at most {limits.MaxInputs} are allowed per request (GPU_MAX_BATCH_SIZE).", ["input"])];
        }

        if (Input.TokenIds is { } ids)
        {
            for (var i = 0; i < ids.Count; i++)
            {
                if (ids[i].Length == 0)
                {
                    return [new ValidationResult($"'{Input.Param(i)}' must be a non-empty array of token ids.", ["input"])];
                }

                if (limits.MaxTextLength is { } max && ids[i].Length > max)
                {
                    return [new ValidationResult($"'{Input.Param(i)}' has {ids[i].Length} token ids; at most {max} are allowed (GPU_MAX_TEXT_LENGTH).", ["input"])];
                }
            }

            return [];
        }

        return RequestRules.TextLengths(Input.Texts!, "input", limits, Input.Single);
    }
}

/// <summary>Model names as the API takes them: a hub id or a bare name, at most <see cref="MaxLength"/> characters.</summary>
public static class ModelName
{
    public const int MaxLength = 200;
}

/// <summary>The rules every list of texts follows: present, not empty, no nulls, within the request limits.</summary>
internal static class RequestRules
{
    public static RequestLimits Limits(ValidationContext context) =>
        (context.GetService(typeof(IOptions<RequestLimits>)) as IOptions<RequestLimits>)?.Value ?? new RequestLimits();

    public static IEnumerable<ValidationResult> Texts(IReadOnlyList<string?>? texts, string name, ValidationContext context, bool countLimit = true)
    {
        if (texts is null)
        {
            return [];
        }

        if (texts.Count == 0)
        {
            return [new ValidationResult($"'{name}' must not be empty.", [name])];
        }

        var limits = Limits(context);
        if (countLimit && texts.Count > limits.MaxInputs)
        {
            return [new ValidationResult($"'{name}' has {texts.Count} items; at most {limits.MaxInputs} are allowed per request (GPU_MAX_BATCH_SIZE).", [name])];
        }

        return TextLengths(texts, name, limits);
    }

    public static IEnumerable<ValidationResult> TextLengths(IEnumerable<string?> texts, string name, RequestLimits limits, bool single = false)
    {
        var i = 0;
        foreach (var text in texts)
        {
            var param = single ? name : $"{name}[{i}]";
            if (text is null)
            {
                return [new ValidationResult($"'{param}' must be a string, not null.", [name])];
            }

            if (limits.MaxTextLength is { } max && text.Length > max)
            {
                return [new ValidationResult($"'{param}' has {text.Length} characters; at most {max} are allowed (GPU_MAX_TEXT_LENGTH).", [name])];
            }

            i++;
        }

        return [];
    }
}
