using System.Text.Json;
using Microsoft.ML.Tokenizers;
using OrleansGpu.Api.Http;

namespace OrleansGpu.Api.Endpoints;

/// <summary>
/// Token ids in OpenAI's <c>cl100k_base</c> encoding, as LangChain's <c>OpenAIEmbeddings</c> sends by default. They
/// are turned back into text, which the model's own tokenizer then reads; feeding them to a BERT tokenizer as ids
/// would be meaningless.
/// </summary>
internal static class OpenAiTokens
{
    private static readonly Lazy<Tokenizer> Cl100k = new(() => TiktokenTokenizer.CreateForEncoding("cl100k_base"));

    private const int VocabularySize = 100_277;

    public static string Decode(JsonElement ids, string param)
    {
        if (ids.ValueKind != JsonValueKind.Array || ids.GetArrayLength() == 0)
        {
            throw new BadRequestException($"'{param}' must be a non-empty array of token ids.", "input");
        }

        var tokens = new List<int>(ids.GetArrayLength());
        foreach (var id in ids.EnumerateArray())
        {
            if (id.ValueKind != JsonValueKind.Number || !id.TryGetInt32(out var token) || token < 0 || token >= VocabularySize)
            {
                throw new BadRequestException($"'{param}' holds something that is not a cl100k_base token id (0 to {VocabularySize - 1}).", "input");
            }

            tokens.Add(token);
        }

        return Cl100k.Value.Decode(tokens);
    }
}
