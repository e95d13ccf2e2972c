using System.Text.Json;

namespace OrleansGpu.Api.Http;

/// <summary>
/// Reads a JSON request body and its fields with messages that say exactly what is wrong (which field, which item,
/// what was expected). Malformed JSON, invalid UTF-8, excessive nesting and oversized bodies all become a
/// <see cref="BadRequestException"/>, so the caller gets a 4xx and the server carries on.
/// </summary>
public static class JsonBody
{
    public static async Task<JsonDocument> ReadAsync(HttpContext context, RequestLimits limits)
    {
        if (context.Request.ContentLength > limits.MaxBodyBytes)
        {
            throw TooLarge(limits);
        }

        using var buffer = new MemoryStream();
        try
        {
            await context.Request.Body.CopyToAsync(buffer, context.RequestAborted);
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw TooLarge(limits);
        }

        if (buffer.Length > limits.MaxBodyBytes)
        {
            throw TooLarge(limits);
        }

        if (buffer.Length == 0)
        {
            throw new BadRequestException("The request body is empty; send a JSON object.");
        }

        var bytes = buffer.GetBuffer().AsMemory(0, (int)buffer.Length);
        if (!System.Text.Unicode.Utf8.IsValid(bytes.Span))
        {
            throw new BadRequestException("The request body is not valid JSON: it is not valid UTF-8.");
        }

        try
        {
            var document = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = limits.MaxJsonDepth });
            var kind = document.RootElement.ValueKind;
            if (kind != JsonValueKind.Object)
            {
                document.Dispose();
                throw new BadRequestException($"The request body must be a JSON object, not {Describe(kind)}.");
            }

            return document;
        }
        catch (JsonException ex)
        {
            throw new BadRequestException($"The request body is not valid JSON: {ex.Message.Split(" Path:", 2)[0].Split(" LineNumber:", 2)[0].TrimEnd('.')}.");
        }
    }

    private static BadRequestException TooLarge(RequestLimits limits) =>
        new($"The request body exceeds {limits.MaxBodyBytes} bytes.", status: StatusCodes.Status413PayloadTooLarge, code: "body_too_large");

    /// <summary>A required array of strings (nulls are refused), within the batch and text-length limits.</summary>
    public static IReadOnlyList<string> StringArray(JsonElement body, string name, RequestLimits limits, bool allowEmpty = false)
    {
        if (!body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            throw new BadRequestException($"'{name}' is required: an array of strings.", name);
        }

        return Strings(value, name, limits, allowEmpty);
    }

    public static IReadOnlyList<string> Strings(JsonElement value, string name, RequestLimits limits, bool allowEmpty = false)
    {
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw new BadRequestException($"'{name}' must be an array of strings, not {Describe(value.ValueKind)}.", name);
        }

        var count = value.GetArrayLength();
        if (count == 0 && !allowEmpty)
        {
            throw new BadRequestException($"'{name}' must not be empty.", name);
        }

        if (count > limits.MaxBatchSize)
        {
            throw new BadRequestException($"'{name}' has {count} items; at most {limits.MaxBatchSize} are allowed per request (GPU_MAX_BATCH_SIZE).", name);
        }

        var result = new string[count];
        var i = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
            {
                throw new BadRequestException($"'{name}[{i}]' must be a string, not {Describe(item.ValueKind)}.", name);
            }

            var text = item.GetString()!;
            if (text.Length > limits.MaxTextLength)
            {
                throw new BadRequestException($"'{name}[{i}]' has {text.Length} characters; at most {limits.MaxTextLength} are allowed (GPU_MAX_TEXT_LENGTH).", name);
            }

            result[i++] = text;
        }

        return result;
    }

    public static string? OptionalString(JsonElement body, string name)
    {
        if (!body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.String)
        {
            throw new BadRequestException($"'{name}' must be a string, not {Describe(value.ValueKind)}.", name);
        }

        var s = value.GetString()!.Trim();
        if (s.Length == 0)
        {
            throw new BadRequestException($"'{name}' must not be empty.", name);
        }

        if (s.Length > 200)
        {
            throw new BadRequestException($"'{name}' is too long.", name);
        }

        return s;
    }

    public static bool? OptionalBool(JsonElement body, string name)
    {
        if (!body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new BadRequestException($"'{name}' must be true or false, not {Describe(value.ValueKind)}.", name),
        };
    }

    public static int? OptionalInt(JsonElement body, string name, int min, int max)
    {
        if (!body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out var n))
        {
            throw new BadRequestException($"'{name}' must be an integer.", name);
        }

        if (n < min || n > max)
        {
            throw new BadRequestException($"'{name}' must be between {min} and {max}; got {n}.", name);
        }

        return n;
    }

    public static float RequiredFloat(JsonElement body, string parent, string name)
    {
        if (!body.TryGetProperty(name, out var value) || value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out var d) || !double.IsFinite(d))
        {
            throw new BadRequestException($"'{parent}.{name}' must be a number.", parent);
        }

        return (float)d;
    }

    public static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "nothing",
    };
}
