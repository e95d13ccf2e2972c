using Microsoft.ML.Tokenizers;

namespace OrleansGpu.Api.Endpoints;

/// <summary>
/// Token ids in OpenAI's <c>cl100k_base</c> encoding, as LangChain's <c>OpenAIEmbeddings</c> sends by default. They
/// are turned back into text, which the model's own tokenizer then reads; feeding them to a BERT tokenizer as ids
/// would be meaningless. (The ids' range is checked when the request is read.)
/// </summary>
internal static class OpenAiTokens
{
    private static readonly Lazy<Tokenizer> Cl100k = new(() => TiktokenTokenizer.CreateForEncoding("cl100k_base"));

    public static string Decode(int[] ids) => Cl100k.Value.Decode(ids);
}
