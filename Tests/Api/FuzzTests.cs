using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Api;

/// <summary>
/// A seeded fuzzer: 10,000 generated bodies over the three POST routes (lone surrogates, byte mutations, deep nesting,
/// raw NaN and infinities, wrong types, huge arrays, valid requests between them) against the real front, sent
/// concurrently over keep-alive. Every answer must be a JSON body below 500 that shows no server path, no stack trace
/// and not the key, and the front must still serve afterwards.
/// </summary>
[Collection(FrontCollection.Name)]
public sealed class FuzzTests(FrontFixture fixture)
{
    private const int Seed = 20261126;
    private const int Bodies = 10_000;

    private static readonly string[] Routes = ["/embed", "/bertscore", "/v1/embeddings"];

    [Fact]
    public async Task Ten_thousand_generated_bodies_get_clean_json_answers_below_500()
    {
        var random = new Random(Seed);
        var bodies = Enumerable.Range(0, Bodies).Select(_ => Generate(random)).ToArray();
        var failures = new ConcurrentQueue<string>();
        var statuses = new ConcurrentDictionary<int, int>();
        var codes = new ConcurrentDictionary<string, int>();
        var forbidden = new[] { FrontFixture.Key, fixture.ModelsDirectory, Paths.RepositoryRoot, "   at ", "Exception", ".cs:line" };

        // Three at a time: the front runs one job with two waiting, so valid bodies never meet a full queue (a 503
        // here would be a refusal the fuzzer did not cause).
        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = 3, PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
        using var http = new HttpClient(handler) { BaseAddress = fixture.Front.BaseAddress, Timeout = TimeSpan.FromMinutes(2) };
        http.DefaultRequestHeaders.Add("X-API-Key", FrontFixture.Key);
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, 3).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < bodies.Length)
            {
                var (route, body) = bodies[i];
                using var content = new ByteArrayContent(body);
                content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                using var response = await http.PostAsync(route, content, TestContext.Current.CancellationToken);
                var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
                var status = (int)response.StatusCode;
                statuses.AddOrUpdate(status, 1, (_, n) => n + 1);
                var problem = Check(route, status, response.Content.Headers.ContentType?.MediaType, text, forbidden, out var code);
                if (code is not null)
                {
                    codes.AddOrUpdate(code, 1, (_, n) => n + 1);
                }

                if (problem is not null)
                {
                    failures.Enqueue($"#{i} {route} {Printable(body)} → {status}: {problem}: {text[..Math.Min(text.Length, 300)]}");
                }
            }
        }));

        Assert.True(failures.IsEmpty, $"{failures.Count} bad answers, the first: \n{string.Join("\n", failures.Take(10))}");

        // The fuzzer reached what it is for: refusals of every kind, and real work between them.
        var summary = string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Key}: {s.Value}")) + " | " + string.Join(", ", codes.Select(c => $"{c.Key}: {c.Value}"));
        Assert.True(statuses.GetValueOrDefault(200) > 50, summary);
        Assert.True(statuses.GetValueOrDefault(400) > 5_000, summary);
        foreach (var code in new[] { "invalid_json", "invalid_unicode", "invalid_input" })
        {
            Assert.True(codes.GetValueOrDefault(code) > 50, $"{code}: {summary}");
        }

        using var health = fixture.Anonymous();
        Assert.Equal(HttpStatusCode.OK, (await health.GetAsync("/health", TestContext.Current.CancellationToken)).StatusCode);
        Assert.DoesNotContain(FrontFixture.Key, fixture.Front.Output);
    }

    private static string? Check(string route, int status, string? mediaType, string text, string[] forbidden, out string? code)
    {
        code = null;
        if (status >= 500)
        {
            return "a server error";
        }

        if (mediaType is not ("application/json" or "application/problem+json"))
        {
            return $"not JSON ({mediaType})";
        }

        JsonElement body;
        try
        {
            body = JsonDocument.Parse(text).RootElement;
        }
        catch (JsonException)
        {
            return "a body that is not JSON";
        }

        if (status >= 400)
        {
            var error = route.StartsWith("/v1", StringComparison.Ordinal) ? body.GetProperty("error") : body;
            code = error.GetProperty("code").GetString();
            var message = error.GetProperty(route.StartsWith("/v1", StringComparison.Ordinal) ? "message" : "detail").GetString();
            if (string.IsNullOrWhiteSpace(message))
            {
                return "an error without a message";
            }
        }

        return forbidden.FirstOrDefault(f => text.Contains(f, StringComparison.Ordinal)) is { } shown ? $"shows '{shown}'" : null;
    }

    private static string Printable(byte[] body)
    {
        var text = Encoding.UTF8.GetString(body, 0, Math.Min(body.Length, 160));
        return body.Length > 160 ? text + $"… ({body.Length} bytes)" : text;
    }

    /// <summary>One body: a request of the route's shape, then one way of breaking it (or none).</summary>
    private static (string Route, byte[] Body) Generate(Random random)
    {
        var route = Routes[random.Next(Routes.Length)];
        var json = Request(random, route);

        // Byte mutations and cuts go to bodies without a model name, so they never make up a valid name of a model
        // that is not installed: what that 404 says is the model store's business, not this fuzzer's.
        var anonymous = Request(random, route, named: false);
        return (route, random.Next(20) switch
        {
            0 => Encoding.UTF8.GetBytes(json), // as generated: often valid, sometimes a wrong type or value
            1 or 2 or 3 => Encoding.UTF8.GetBytes(LoneSurrogate(random, json)),
            4 or 5 or 6 or 7 => Mutate(random, Encoding.UTF8.GetBytes(anonymous)),
            8 or 9 => Encoding.UTF8.GetBytes(Nested(random)),
            10 or 11 => Encoding.UTF8.GetBytes(json.Replace("0.5", random.Next(3) switch { 0 => "NaN", 1 => "Infinity", _ => "-Infinity" }, StringComparison.Ordinal)
                .Replace("\"texts\": [", "\"texts\": [NaN, ", StringComparison.Ordinal)),
            12 or 13 => Encoding.UTF8.GetBytes(HugeArray(random, route)),
            14 or 15 => Encoding.UTF8.GetBytes(WrongTypes(random, route)),
            16 => Encoding.UTF8.GetBytes(Numbers(random, route)),
            _ => Truncate(random, Encoding.UTF8.GetBytes(anonymous)),
        });
    }

    private static readonly string[] Words = ["the", "cat", "sat", "on", "mat", "héllo", "日本語", "🙂", "a\\nb", "\\\"q\\\"", "\\u00e9", "\\ud83d\\ude00", ""];

    private static string Text(Random random) => string.Join(' ', Enumerable.Range(0, random.Next(1, 6)).Select(_ => Words[random.Next(Words.Length)]));

    private static string Texts(Random random) => "[" + string.Join(", ", Enumerable.Range(0, random.Next(1, 4)).Select(_ => $"\"{Text(random)}\"")) + "]";

    private static string Model(Random random, bool named) => !named ? "" : random.Next(8) switch
    {
        0 => ", \"model\": \"all-MiniLM-L6-v2\"",
        1 => ", \"model\": \"../../etc/passwd\"",
        2 => ", \"model\": \"" + new string('m', 300) + "\"",
        3 => ", \"model\": \"\"",
        4 => ", \"model\": 7",
        _ => "",
    };

    private static string Request(Random random, string route, bool named = true) => route switch
    {
        "/embed" => $$"""{"texts": {{Texts(random)}}{{Model(random, named)}}{{(random.Next(4) == 0 ? ", \"truncate\": false, \"normalize\": false" : "")}}}""",
        "/bertscore" => random.Next(2) == 0
            ? $$"""{"candidates": ["{{Text(random)}}"], "references": ["{{Text(random)}}"], "idf": {{(random.Next(2) == 0 ? "true" : "false")}}{{Model(random, named)}}}"""
            : $$$"""{"candidates": ["{{{Text(random)}}}", "x"], "references": [["{{{Text(random)}}}", "y"], ["z"]], "rescale_with_baseline": true, "baseline": {"precision": 0.5, "recall": 0.5, "f1": 0.5}}""",
        _ => random.Next(3) switch
        {
            0 => $$"""{"input": "{{Text(random)}}", "encoding_format": "base64"{{Model(random, named)}}}""",
            1 => $$"""{"input": [[{{string.Join(", ", Enumerable.Range(0, random.Next(1, 8)).Select(_ => random.Next(-5, 100_300)))}}]], "dimensions": {{random.Next(0, 400)}}}""",
            _ => $$"""{"input": {{Texts(random)}}{{Model(random, named)}}}""",
        },
    };

    private static string LoneSurrogate(Random random, string json)
    {
        var lone = $"\\u{(random.Next(2) == 0 ? 0xD800 : 0xDC00) + random.Next(0x400):x4}";
        var quotes = Enumerable.Range(0, json.Length).Where(i => json[i] == '"').ToList();
        var at = quotes[random.Next(quotes.Count)] + 1; // just inside a string: a value, a model name or a property name
        return json[..at] + lone + json[at..];
    }

    /// <summary>JSON's structure, and bytes that are never valid UTF-8.</summary>
    private static readonly byte[] Specials = [.. "{}[],:\"\\0"u8, 0xFF, 0xC0, 0x80];

    private static byte[] Mutate(Random random, byte[] body)
    {
        var bytes = body.ToList();
        for (var n = random.Next(1, 5); n > 0 && bytes.Count > 0; n--)
        {
            var at = random.Next(bytes.Count);
            switch (random.Next(4))
            {
                case 0:
                    bytes[at] = (byte)random.Next(256);
                    break;
                case 1:
                    bytes.Insert(at, Specials[random.Next(Specials.Length)]);
                    break;
                case 2:
                    bytes.RemoveAt(at);
                    break;
                default:
                    bytes.InsertRange(at, Encoding.UTF8.GetBytes(new[] { "null", "true", "-0", "1e999", "\"", "\\u0000", "\\", "[[[" }[random.Next(8)]));
                    break;
            }
        }

        return [.. bytes];
    }

    private static byte[] Truncate(Random random, byte[] body) => body[..random.Next(body.Length)];

    private static string Nested(Random random)
    {
        var depth = random.Next(2) == 0 ? random.Next(10, 40) : random.Next(1000, 20_000);
        var open = random.Next(2) == 0 ? '[' : '{';
        return open == '['
            ? "{\"texts\": " + new string('[', depth) + new string(']', depth) + "}"
            : "{\"texts\": " + string.Concat(Enumerable.Repeat("{\"a\": ", depth)) + "1" + new string('}', depth) + "}";
    }

    private static string HugeArray(Random random, string route)
    {
        var count = random.Next(2049, 6000);
        var item = random.Next(3) switch { 0 => "\"x\"", 1 => "1", _ => "null" };
        var items = string.Join(",", Enumerable.Repeat(item, count));
        return route switch
        {
            "/embed" => $$"""{"texts": [{{items}}]}""",
            "/bertscore" => $$"""{"candidates": ["a"], "references": [[{{items}}]]}""",
            _ => item == "1" ? $$"""{"input": [[{{items}}], [{{items}}]]}""" : $$"""{"input": [{{items}}]}""",
        };
    }

    private static readonly string[] Values = ["null", "true", "false", "0", "-1", "1.5", "1e308", "\"s\"", "[]", "{}", "[1, [2]]", "{\"a\": []}", "[\"a\", 1]", "[[]]", "[[\"a\"], \"b\"]"];

    private static string WrongTypes(Random random, string route)
    {
        string V() => Values[random.Next(Values.Length)];
        return route switch
        {
            "/embed" => $$"""{"texts": {{V()}}, "model": {{V()}}, "normalize": {{V()}}, "truncate": {{V()}}}""",
            "/bertscore" => $$"""{"candidates": {{V()}}, "references": {{V()}}, "num_layers": {{V()}}, "idf": {{V()}}, "lang": {{V()}}, "baseline": {{V()}}}""",
            _ => $$"""{"input": {{V()}}, "encoding_format": {{V()}}, "dimensions": {{V()}}, "model": {{V()}}}""",
        };
    }

    private static string Numbers(Random random, string route)
    {
        var number = new[] { "1e400", "-1e300", "1e-400", "0.9999999999", "-1", "2147483648", "-0", "1.0", "99" }[random.Next(9)];
        return route switch
        {
            "/embed" => $$"""{"texts": ["n"], "normalize": {{number}}}""",
            "/bertscore" => $$$"""{"candidates": ["a"], "references": ["b"], "model": "all-MiniLM-L6-v2", "num_layers": {{{number}}}, "baseline": {"precision": {{{number}}}, "recall": 0.5, "f1": 0.5}}""",
            _ => $$"""{"input": "n", "dimensions": {{number}}}""",
        };
    }
}
