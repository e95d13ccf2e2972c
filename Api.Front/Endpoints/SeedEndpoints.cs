using System.Text.Json;
using OrleansGpu.Api.Http;
using OrleansGpu.Api.Routing;
using OrleansGpu.Grains;

namespace OrleansGpu.Api.Endpoints;

/// <summary>The seed service's routes and shapes (see ARCHITECTURE.md, REST contract), with our extensions.</summary>
public static class SeedEndpoints
{
    public static void MapSeedEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet("/health", HealthAsync).AllowAnonymous().WithName("health");
        app.MapGet("/info", InfoAsync).WithName("info");
        app.MapGet("/status", StatusAsync).WithName("status");
        app.MapPost("/embed", EmbedAsync).WithName("embed");
        app.MapPost("/bertscore", BertScoreAsync).WithName("bertscore");
    }

    private static async Task<IResult> HealthAsync(HostRouter router, HttpContext context)
    {
        if (router.Hosts.Count == 0)
        {
            await router.RefreshAsync(context.RequestAborted);
        }

        var hosts = router.Hosts;
        var body = new
        {
            status = hosts.Count > 0 ? "ok" : "unavailable",
            device = hosts.Count > 0 ? DeviceKind(hosts[0].Device) : "none",
            hosts = hosts.Count,
            ready = hosts.Count > 0,
        };
        return hosts.Count > 0 ? Results.Json(body) : Results.Json(body, statusCode: StatusCodes.Status503ServiceUnavailable);
    }

    private static async Task<IResult> InfoAsync(HostRouter router, IClusterClient client, HttpContext context)
    {
        var infos = await ClusterView.InfosAsync(router, client, context.RequestAborted);
        var first = infos.FirstOrDefault();
        return Results.Json(new
        {
            device = first is null ? "none" : DeviceKind(first.Device),
            device_name = first?.DeviceName,
            vram_total_mb = first?.VramTotalMb,
            vram_used_mb = first?.VramUsedMb,
            cuda_version = first?.CudaVersion,
            loaded_models = infos.SelectMany(i => i.LoadedModels.Select(m => m.Name)).Distinct().Order().ToArray(),
            version = first?.Version ?? typeof(SeedEndpoints).Assembly.GetName().Version?.ToString(3),
            hosts = infos.Select(i => new
            {
                name = i.Host,
                device = i.Device,
                device_name = i.DeviceName,
                vram_total_mb = i.VramTotalMb,
                vram_used_mb = i.VramUsedMb,
                cuda_version = i.CudaVersion,
                loaded_models = i.LoadedModels.Select(m => m.Name).ToArray(),
                models = i.LoadedModels.Select(m => new { name = m.Name, provider = m.Provider, embedding = m.Embedding, bertscore = m.BertScore, dimensions = m.Dimensions, layers = m.Layers }),
                version = i.Version,
            }),
        });
    }

    private static async Task<IResult> StatusAsync(HostRouter router, IClusterClient client, HttpContext context)
    {
        var statuses = await ClusterView.StatusesAsync(router, client, context.RequestAborted);
        var maxConcurrent = statuses.Sum(s => s.MaxConcurrent);
        var inFlight = statuses.Sum(s => s.InFlight);
        return Results.Json(new
        {
            queue = new
            {
                max_concurrent = maxConcurrent,
                in_flight = inFlight,
                available_slots = Math.Max(0, maxConcurrent - inFlight),
                waiting_estimate = statuses.Sum(s => s.Waiting),
            },
            active_jobs = statuses.SelectMany(s => s.Jobs.Select(j => Job(j, s.Host))),
            routing = router.Strategy == RoutingStrategy.LeastBusy ? "least-busy" : "round-robin",
            hosts = statuses.Select(s => new
            {
                name = s.Host,
                max_concurrent = s.MaxConcurrent,
                in_flight = s.InFlight,
                available_slots = Math.Max(0, s.MaxConcurrent - s.InFlight),
                waiting = s.Waiting,
                active_jobs = s.Jobs.Select(j => Job(j, s.Host)),
            }),
        });
    }

    private static object Job(JobStatus j, string host) => new
    {
        id = j.Id,
        type = j.Type,
        started_at = j.StartedAt,
        items = j.Items,
        model = j.Model,
        progress = j.Progress,
        state = j.State,
        host,
        bytes_done = j.BytesDone,
        bytes_total = j.BytesTotal,
    };

    private static async Task EmbedAsync(HttpContext context, HostRouter router, RequestLimits limits, FrontDefaults defaults)
    {
        using var document = await JsonBody.ReadAsync(context, limits);
        var body = document.RootElement;
        var texts = JsonBody.StringArray(body, "texts", limits);
        var model = JsonBody.OptionalString(body, "model") ?? defaults.EmbedModel;
        var work = new EmbedWork(
            model,
            texts,
            JsonBody.OptionalBool(body, "normalize"),
            JsonBody.OptionalBool(body, "truncate") ?? true);

        var batch = await router.ExecuteAsync(WorkSize.Tokens(texts), (host, ct) => host.EmbedAsync(work, ct), context.RequestAborted);

        context.Response.Headers["X-Gpu-Host"] = batch.Host;
        context.Response.ContentType = "application/json";
        await using var writer = new Utf8JsonWriter(context.Response.BodyWriter.AsStream());
        writer.WriteStartObject();
        writer.WriteStartArray("embeddings");
        for (var i = 0; i < batch.Count; i++)
        {
            writer.WriteStartArray();
            foreach (var v in batch.Vector(i))
            {
                writer.WriteNumberValue(v);
            }

            writer.WriteEndArray();
        }

        writer.WriteEndArray();
        writer.WriteString("model", model);
        writer.WriteNumber("dimensions", batch.Dimensions);
        writer.WriteEndObject();
        await writer.FlushAsync(context.RequestAborted);
    }

    private static async Task<IResult> BertScoreAsync(HttpContext context, HostRouter router, RequestLimits limits, FrontDefaults defaults)
    {
        using var document = await JsonBody.ReadAsync(context, limits);
        var body = document.RootElement;
        var candidates = JsonBody.StringArray(body, "candidates", limits);
        var references = References(body, limits);
        if (candidates.Count != references.Count)
        {
            throw new BadRequestException(
                $"'candidates' has {candidates.Count} items and 'references' has {references.Count}; they must pair up one to one.", "references");
        }

        var model = JsonBody.OptionalString(body, "model_type") ?? JsonBody.OptionalString(body, "model") ?? defaults.BertScoreModel;
        var rescale = JsonBody.OptionalBool(body, "rescale_with_baseline") ?? false;
        var work = new BertScoreWork(
            model,
            candidates,
            references,
            JsonBody.OptionalInt(body, "num_layers", 0, 1000),
            JsonBody.OptionalBool(body, "idf") ?? false,
            rescale,
            JsonBody.OptionalString(body, "lang") ?? "en",
            Baseline(body));

        var tokens = WorkSize.Tokens(candidates) + references.Sum(WorkSize.Tokens);
        var scores = await router.ExecuteAsync(tokens, (host, ct) => host.BertScoreAsync(work, ct), context.RequestAborted);

        context.Response.Headers["X-Gpu-Host"] = scores.Host;
        return Results.Json(new
        {
            precision = Finite(scores.Precision),
            recall = Finite(scores.Recall),
            f1 = Finite(scores.F1),
            model,
            num_layers = scores.NumLayers,
            hash = scores.Hash,
        });
    }

    /// <summary><c>references</c>: one string per candidate, or a non-empty array of strings per candidate.</summary>
    private static IReadOnlyList<IReadOnlyList<string>> References(JsonElement body, RequestLimits limits)
    {
        if (!body.TryGetProperty("references", out var value) || value.ValueKind != JsonValueKind.Array)
        {
            throw new BadRequestException("'references' is required: an array of strings, or an array of arrays of strings.", "references");
        }

        if (value.GetArrayLength() == 0)
        {
            throw new BadRequestException("'references' must not be empty.", "references");
        }

        if (value[0].ValueKind != JsonValueKind.Array)
        {
            return [.. JsonBody.Strings(value, "references", limits).Select(r => (IReadOnlyList<string>)[r])];
        }

        if (value.GetArrayLength() > limits.MaxBatchSize)
        {
            throw new BadRequestException($"'references' has {value.GetArrayLength()} items; at most {limits.MaxBatchSize} are allowed per request (GPU_MAX_BATCH_SIZE).", "references");
        }

        var result = new List<IReadOnlyList<string>>();
        var i = 0;
        foreach (var group in value.EnumerateArray())
        {
            if (group.ValueKind != JsonValueKind.Array)
            {
                throw new BadRequestException($"'references[{i}]' must be an array of strings like the other items, not {JsonBody.Describe(group.ValueKind)}.", "references");
            }

            result.Add(JsonBody.Strings(group, $"references[{i}]", limits));
            i++;
        }

        return result;
    }

    private static BaselineValues? Baseline(JsonElement body)
    {
        if (!body.TryGetProperty("baseline", out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new BadRequestException("'baseline' must be an object {precision, recall, f1}.", "baseline");
        }

        var p = JsonBody.RequiredFloat(value, "baseline", "precision");
        var r = JsonBody.RequiredFloat(value, "baseline", "recall");
        var f = JsonBody.RequiredFloat(value, "baseline", "f1");
        if (p >= 1 || r >= 1 || f >= 1)
        {
            throw new BadRequestException("'baseline' values must be below 1 (rescaling divides by 1 - b).", "baseline");
        }

        return new BaselineValues(p, r, f);
    }

    /// <summary>bert_score can return NaN (a side whose tokens all weigh 0); JSON has no NaN, so it becomes null.</summary>
    private static float?[] Finite(float[] values) => [.. values.Select(v => float.IsFinite(v) ? v : (float?)null)];

    private static string DeviceKind(string device) => device.StartsWith("cuda", StringComparison.Ordinal) ? "cuda" : device;
}
