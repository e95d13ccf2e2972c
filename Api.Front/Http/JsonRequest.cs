using System.Buffers;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using OrleansGpu.Api.Contracts;

namespace OrleansGpu.Api.Http;

/// <summary>
/// Reads a JSON request body into its typed record, refusing everything else with a 4xx that names the field:
/// a body over the limit (413, after decompression, chunked or not), an unknown <c>Content-Encoding</c> (415),
/// invalid UTF-8, malformed JSON or JSON nested too deep, a lone surrogate escape anywhere (<c>"\ud800"</c> in a
/// value or a property name: JSON allows the escape, but it is not a character), and values of the wrong type.
/// </summary>
public static class JsonRequest
{
    public static async ValueTask<T?> ReadAsync<T>(HttpContext context, JsonTypeInfo<T> typeInfo)
        where T : class
    {
        var limits = context.RequestServices.GetRequiredService<IOptions<RequestLimits>>().Value;
        var body = await ReadBodyAsync(context, limits);
        Check(body.Span, limits.MaxJsonDepth);
        try
        {
            return JsonSerializer.Deserialize(body.Span, typeInfo)
                ?? throw new ApiException(ApiErrorCodes.InvalidJson, "The request body must be a JSON object, not null.");
        }
        catch (JsonException ex)
        {
            throw FieldError(ex, typeInfo);
        }
    }

    /// <summary>The body's bytes, decompressed, at most <see cref="RequestLimits.MaxBodyBytes"/> of them.</summary>
    private static async Task<ReadOnlyMemory<byte>> ReadBodyAsync(HttpContext context, RequestLimits limits)
    {
        var request = context.Request;
        var encoding = request.Headers.ContentEncoding.ToString().Trim().ToLowerInvariant();
        var compressed = encoding is not ("" or "identity");
        if (!compressed && request.ContentLength > limits.MaxBodyBytes)
        {
            throw TooLarge(limits);
        }

        Stream source = encoding switch
        {
            "" or "identity" => request.Body,
            "gzip" or "x-gzip" => new GZipStream(request.Body, CompressionMode.Decompress, leaveOpen: true),
            "deflate" => new ZLibStream(request.Body, CompressionMode.Decompress, leaveOpen: true),
            "br" => new BrotliStream(request.Body, CompressionMode.Decompress, leaveOpen: true),
            _ => throw new ApiException(ApiErrorCodes.UnsupportedMediaType,
                $"Content-Encoding '{Printable(encoding)}' is not supported: send the body as is, or with gzip, deflate or br."),
        };

        // Read one byte past the limit to tell "exactly the limit" (accepted) from "over it", whether the body came
        // with a Content-Length, chunked, or compressed (a zip bomb stops here, at the limit).
        var buffer = new MemoryStream();
        var chunk = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            while (true)
            {
                int read;
                try
                {
                    read = await source.ReadAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, limits.MaxBodyBytes + 1 - buffer.Length)), context.RequestAborted);
                }
                catch (InvalidDataException)
                {
                    throw new ApiException(ApiErrorCodes.InvalidJson, $"The request body is not valid {encoding} data.");
                }

                if (read == 0)
                {
                    break;
                }

                buffer.Write(chunk, 0, read);
                if (buffer.Length > limits.MaxBodyBytes)
                {
                    throw TooLarge(limits);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
            if (compressed)
            {
                await source.DisposeAsync();
            }
        }

        if (buffer.Length == 0)
        {
            throw new ApiException(ApiErrorCodes.InvalidJson, "The request body is empty; send a JSON object.");
        }

        return buffer.GetBuffer().AsMemory(0, (int)buffer.Length);
    }

    private static ApiException TooLarge(RequestLimits limits) =>
        new(ApiErrorCodes.BodyTooLarge, $"The request body exceeds {limits.MaxBodyBytes} bytes (GPU_MAX_BODY_BYTES).");

    /// <summary>
    /// One pass over the JSON before it is bound: valid UTF-8, well formed, not too deep, an object at the root, and
    /// no escaped string that is not Unicode text, naming where it is.
    /// </summary>
    internal static void Check(ReadOnlySpan<byte> json, int maxDepth)
    {
        if (!System.Text.Unicode.Utf8.IsValid(json))
        {
            throw new ApiException(ApiErrorCodes.InvalidJson, "The request body is not valid JSON: it is not valid UTF-8.");
        }

        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = maxDepth });
        var path = new List<(string Name, int Index)>();
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject or JsonTokenType.StartArray:
                        if (path.Count == 0 && reader.TokenType != JsonTokenType.StartObject)
                        {
                            throw new ApiException(ApiErrorCodes.InvalidJson, "The request body must be a JSON object, not an array.");
                        }

                        Step(path);
                        path.Add((reader.TokenType == JsonTokenType.StartArray ? "[]" : "", -1));
                        break;
                    case JsonTokenType.EndObject or JsonTokenType.EndArray:
                        path.RemoveAt(path.Count - 1);
                        break;
                    case JsonTokenType.PropertyName:
                        var name = Unicode(ref reader, path, "A property name");
                        path[^1] = (name, -1);
                        break;
                    default:
                        if (path.Count == 0)
                        {
                            throw new ApiException(ApiErrorCodes.InvalidJson, $"The request body must be a JSON object, not {JsonKinds.Describe(reader.TokenType)}.");
                        }

                        Step(path);
                        if (reader.TokenType == JsonTokenType.String)
                        {
                            Unicode(ref reader, path, "The value");
                        }

                        break;
                }
            }
        }
        catch (JsonException ex)
        {
            // The reader's message says what and where ("... LineNumber: 0 | BytePositionInLine: 7."); keep what.
            var what = ex.Message.Split(" LineNumber:", 2)[0].Split(" Path:", 2)[0].TrimEnd('.', ' ');
            throw new ApiException(ApiErrorCodes.InvalidJson, $"The request body is not valid JSON: {what}.");
        }
    }

    /// <summary>Counts the items of the array we are in, so an error can say <c>texts[3]</c>.</summary>
    private static void Step(List<(string Name, int Index)> path)
    {
        if (path.Count > 0 && path[^1].Name == "[]")
        {
            path[^1] = ("[]", path[^1].Index + 1);
        }
    }

    private static string Unicode(ref Utf8JsonReader reader, List<(string Name, int Index)> path, string what)
    {
        try
        {
            return reader.GetString()!;
        }
        catch (InvalidOperationException)
        {
            var where = Describe(path);
            var field = where.Length == 0 ? "the body" : $"'{where}'";
            throw new ApiException(ApiErrorCodes.InvalidUnicode,
                $"{what} in {field} holds invalid Unicode: an escaped surrogate (\\ud800-\\udfff) that is not half of a pair is not a character.",
                where.Length == 0 ? null : where.Split('.', '[')[0]);
        }
    }

    private static string Describe(List<(string Name, int Index)> path)
    {
        var text = new StringBuilder();
        foreach (var (name, index) in path)
        {
            if (name == "[]")
            {
                text.Append('[').Append(Math.Max(index, 0)).Append(']');
            }
            else if (name.Length > 0)
            {
                text.Append(text.Length == 0 ? "" : ".").Append(Printable(name));
            }
        }

        return text.ToString();
    }

    /// <summary>
    /// A field of the wrong type: names the field as the body spells it (<c>texts[1]</c>, <c>baseline.precision</c>)
    /// and what it must be, read from the record's metadata.
    /// </summary>
    private static ApiException FieldError(JsonException error, JsonTypeInfo root)
    {
        var path = (error.Path ?? "$").TrimStart('$').TrimStart('.');
        if (error is JsonFieldException field)
        {
            path += field.Item;
            return new ApiException(ApiErrorCodes.InvalidInput, $"'{path}' {field.Message}", Param(path));
        }

        if (path.Length == 0)
        {
            return new ApiException(ApiErrorCodes.InvalidJson, "The request body must be a JSON object.");
        }

        return new ApiException(ApiErrorCodes.InvalidInput, $"'{path}' must be {Expected(root, path)}.", Param(path));
    }

    private static string Param(string path) => path.Split('.', '[')[0];

    /// <summary>What the record expects at <paramref name="path"/> (like <c>texts[0]</c> or <c>baseline.f1</c>).</summary>
    private static string Expected(JsonTypeInfo root, string path)
    {
        var type = root;
        foreach (var segment in path.Replace("[", ".[").Split('.', StringSplitOptions.RemoveEmptyEntries))
        {
            JsonTypeInfo? next = segment.StartsWith('[')
                ? type.ElementType is { } element ? type.Options.GetTypeInfo(element) : null
                : type.Properties.FirstOrDefault(p => p.Name == segment) is { } property ? type.Options.GetTypeInfo(property.PropertyType) : null;
            if (next is null)
            {
                return "something else";
            }

            type = next;
        }

        return Describe(type.Type);
    }

    private static string Describe(Type type)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        if (type == typeof(string))
        {
            return "a string";
        }

        if (type == typeof(bool))
        {
            return "true or false";
        }

        if (type == typeof(int) || type == typeof(long))
        {
            return "an integer";
        }

        if (type == typeof(double) || type == typeof(float))
        {
            return "a number";
        }

        if (type != typeof(string) && type.GetInterfaces().FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IEnumerable<>)) is { } list)
        {
            var element = Describe(list.GetGenericArguments()[0]);
            return $"an array of {(element.StartsWith("a ", StringComparison.Ordinal) ? element[2..] + "s" : element)}";
        }

        return "an object";
    }

    /// <summary>Text from the request echoed in a message: control characters and lone surrogates shown as escapes.</summary>
    internal static string Printable(string text)
    {
        var result = new StringBuilder(Math.Min(text.Length, 64));
        for (var i = 0; i < text.Length && result.Length < 64; i++)
        {
            var c = text[i];
            var paired = char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]);
            if (paired)
            {
                result.Append(c).Append(text[++i]);
            }
            else if (char.IsControl(c) || char.IsSurrogate(c))
            {
                result.Append($"\\u{(int)c:x4}");
            }
            else
            {
                result.Append(c);
            }
        }

        return result.ToString();
    }
}
