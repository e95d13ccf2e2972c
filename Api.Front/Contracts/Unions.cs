using System.Text.Json;
using System.Text.Json.Serialization;

namespace OrleansGpu.Api.Contracts;

/// <summary>
/// bert_score's <c>refs</c>: one reference per candidate (<c>string[]</c>) or several per candidate
/// (<c>string[][]</c>, each non-empty; the best score per metric wins).
/// </summary>
[JsonConverter(typeof(ReferencesConverter))]
public sealed record References(IReadOnlyList<IReadOnlyList<string>> Groups, bool Multi)
{
    /// <summary>All reference texts of the request.</summary>
    public int Texts => Groups.Sum(g => g.Count);
}

/// <summary>
/// OpenAI's <c>input</c>: a string, an array of strings, or cl100k_base token ids (<c>int[]</c> for one input,
/// <c>int[][]</c> for several, as LangChain sends). Exactly one of <see cref="Texts"/> and <see cref="TokenIds"/> is set.
/// </summary>
[JsonConverter(typeof(EmbeddingInputConverter))]
public sealed record EmbeddingInput(IReadOnlyList<string?>? Texts, IReadOnlyList<int[]>? TokenIds, bool Single)
{
    public int Count => Texts?.Count ?? TokenIds!.Count;

    /// <summary>How an error names input <paramref name="index"/>: <c>input</c> for a single input, else <c>input[i]</c>.</summary>
    public string Param(int index) => Single ? "input" : $"input[{index}]";
}

/// <summary>A vector in the encoding OpenAI's <c>encoding_format</c> asks for: an array of floats, or base64 of little-endian float32.</summary>
[JsonConverter(typeof(EmbeddingVectorConverter))]
public sealed record EmbeddingVector(float[] Values, bool Base64);

/// <summary>
/// A field of the body holds the wrong thing. Thrown by the converters below; <see cref="Item"/> (like <c>[3]</c>) is
/// appended to the property's path, which the serializer adds, to name the exact item.
/// </summary>
public sealed class JsonFieldException(string message, string item = "") : JsonException(message)
{
    public string Item { get; } = item;
}

internal static class JsonKinds
{
    public static string Describe(JsonTokenType token) => token switch
    {
        JsonTokenType.StartObject => "an object",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.String => "a string",
        JsonTokenType.Number => "a number",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.Null => "null",
        _ => "nothing",
    };

    public static List<string?> Strings(ref Utf8JsonReader reader, string what, string prefix = "")
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new JsonFieldException($"must be {what}, not {Describe(reader.TokenType)}.", prefix);
        }

        var texts = new List<string?>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            texts.Add(reader.TokenType switch
            {
                JsonTokenType.String => reader.GetString(),
                JsonTokenType.Null => null, // named by validation, with its index
                var other => throw new JsonFieldException($"must be a string, not {Describe(other)}.", $"{prefix}[{texts.Count}]"),
            });
        }

        return texts;
    }

    public static void Skip(ref Utf8JsonReader reader)
    {
        if (reader.TokenType is JsonTokenType.StartArray or JsonTokenType.StartObject)
        {
            reader.Skip();
        }
    }
}

internal sealed class ReferencesConverter : JsonConverter<References>
{
    private const string Shape = "an array of strings, or an array of arrays of strings";

    public override References Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new JsonFieldException($"must be {Shape}, not {JsonKinds.Describe(reader.TokenType)}.");
        }

        var groups = new List<IReadOnlyList<string>>();
        bool? multi = null;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            var item = $"[{groups.Count}]";
            multi ??= reader.TokenType == JsonTokenType.StartArray;
            if (multi.Value)
            {
                if (reader.TokenType != JsonTokenType.StartArray)
                {
                    throw new JsonFieldException($"must be an array of strings like the other items, not {JsonKinds.Describe(reader.TokenType)}.", item);
                }

                var group = JsonKinds.Strings(ref reader, "an array of strings", item);
                if (group.Count == 0)
                {
                    throw new JsonFieldException("must not be empty: each candidate needs at least one reference.", item);
                }

                if (group.IndexOf(null) is var missing and >= 0)
                {
                    throw new JsonFieldException("must be a string, not null.", $"{item}[{missing}]");
                }

                groups.Add(group!);
            }
            else
            {
                groups.Add(reader.TokenType switch
                {
                    JsonTokenType.String => [reader.GetString()!],
                    var other => throw new JsonFieldException($"must be a string like the other items, not {JsonKinds.Describe(other)}.", item),
                });
            }
        }

        if (groups.Count == 0)
        {
            throw new JsonFieldException("must not be empty.");
        }

        return new References(groups, multi ?? false);
    }

    public override void Write(Utf8JsonWriter writer, References value, JsonSerializerOptions options)
    {
        writer.WriteStartArray();
        foreach (var group in value.Groups)
        {
            if (value.Multi)
            {
                writer.WriteStartArray();
            }

            foreach (var text in group)
            {
                writer.WriteStringValue(text);
            }

            if (value.Multi)
            {
                writer.WriteEndArray();
            }
        }

        writer.WriteEndArray();
    }
}

internal sealed class EmbeddingInputConverter : JsonConverter<EmbeddingInput>
{
    /// <summary>The size of OpenAI's cl100k_base vocabulary: ids are 0 to 100,276.</summary>
    public const int Cl100kVocabulary = 100_277;

    public override EmbeddingInput Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.String:
                return new EmbeddingInput([reader.GetString()], null, Single: true);
            case JsonTokenType.StartArray:
                break;
            default:
                throw new JsonFieldException($"must be a string, an array of strings, or token ids, not {JsonKinds.Describe(reader.TokenType)}.");
        }

        if (!reader.Read())
        {
            throw new JsonException();
        }

        switch (reader.TokenType)
        {
            case JsonTokenType.EndArray:
                return new EmbeddingInput([], null, Single: false);
            case JsonTokenType.Number:
                return new EmbeddingInput(null, [Ids(ref reader, continued: true, "")], Single: true);
            case JsonTokenType.StartArray:
                var lists = new List<int[]>();
                do
                {
                    lists.Add(Ids(ref reader, continued: false, $"[{lists.Count}]"));
                }
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray);
                return new EmbeddingInput(null, lists, Single: false);
            default:
                var texts = new List<string?>();
                do
                {
                    texts.Add(reader.TokenType switch
                    {
                        JsonTokenType.String => reader.GetString(),
                        JsonTokenType.Null => null,
                        var other => throw new JsonFieldException($"must be a string like the other items, not {JsonKinds.Describe(other)}.", $"[{texts.Count}]"),
                    });
                }
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray);
                return new EmbeddingInput(texts, null, Single: false);
        }
    }

    /// <summary>Reads one array of token ids; <paramref name="continued"/>: the reader is already on its first number.</summary>
    private static int[] Ids(ref Utf8JsonReader reader, bool continued, string item)
    {
        if (!continued && reader.TokenType != JsonTokenType.StartArray)
        {
            throw new JsonFieldException($"must be an array of token ids like the other items, not {JsonKinds.Describe(reader.TokenType)}.", item);
        }

        var ids = new List<int>();
        if (!continued)
        {
            reader.Read();
        }

        while (reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out var id) || id < 0 || id >= Cl100kVocabulary)
            {
                throw new JsonFieldException($"holds something that is not a cl100k_base token id (0 to {Cl100kVocabulary - 1}) at position {ids.Count}.", item);
            }

            ids.Add(id);
            reader.Read();
        }

        return [.. ids];
    }

    public override void Write(Utf8JsonWriter writer, EmbeddingInput value, JsonSerializerOptions options)
    {
        if (value.Single && value.Texts is { } one)
        {
            writer.WriteStringValue(one[0]);
            return;
        }

        writer.WriteStartArray();
        if (value.Texts is { } texts)
        {
            foreach (var text in texts)
            {
                writer.WriteStringValue(text);
            }
        }
        else
        {
            foreach (var ids in value.TokenIds!)
            {
                if (!value.Single)
                {
                    writer.WriteStartArray();
                }

                foreach (var id in ids)
                {
                    writer.WriteNumberValue(id);
                }

                if (!value.Single)
                {
                    writer.WriteEndArray();
                }
            }
        }

        writer.WriteEndArray();
    }
}

internal sealed class EmbeddingVectorConverter : JsonConverter<EmbeddingVector>
{
    public override EmbeddingVector Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String)
        {
            var bytes = reader.GetBytesFromBase64();
            var values = new float[bytes.Length / sizeof(float)];
            Buffer.BlockCopy(bytes, 0, values, 0, values.Length * sizeof(float));
            return new EmbeddingVector(values, Base64: true);
        }

        var list = new List<float>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            list.Add(reader.GetSingle());
        }

        return new EmbeddingVector([.. list], Base64: false);
    }

    public override void Write(Utf8JsonWriter writer, EmbeddingVector value, JsonSerializerOptions options)
    {
        if (value.Base64)
        {
            // Base64's '+' and '/' need no escaping in JSON; written raw so no encoder can turn '+' into \u002B,
            // which older OpenAI .NET clients cannot decode.
            writer.WriteRawValue($"\"{Convert.ToBase64String(System.Runtime.InteropServices.MemoryMarshal.AsBytes(value.Values.AsSpan()))}\"", skipInputValidation: true);
            return;
        }

        writer.WriteStartArray();
        foreach (var v in value.Values)
        {
            writer.WriteNumberValue(v);
        }

        writer.WriteEndArray();
    }
}
