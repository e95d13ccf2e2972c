using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using OrleansGpu.Api.Contracts;
using OrleansGpu.Api.Http;
using OrleansGpu.Api.Routing;
using OrleansGpu.Api.Scatter;
using OrleansGpu.Grains;

namespace OrleansGpu.Api.Endpoints;

/// <summary>The seed service's routes and shapes (see ARCHITECTURE.md, REST contract), with our extensions.</summary>
public static class SeedEndpoints
{
    public static void MapSeedEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet("/health", HealthAsync).AllowAnonymous().WithName("health")
            .WithSummary("Whether a GPU host is up (no key needed); 503 while none has joined.")
            .Produces<HealthResponse>().Produces<HealthResponse>(StatusCodes.Status503ServiceUnavailable);
        app.MapGet("/info", InfoAsync).WithName("info").WithSummary("Device, memory and loaded models, of the first host and of every host.").ProducesSeedErrors();
        app.MapGet("/status", StatusAsync).WithName("status").WithSummary("The queue and the running jobs with their progress.").ProducesSeedErrors();
        app.MapPost("/embed", EmbedAsync).WithName("embed").WithSummary("Sentence embeddings, as sentence-transformers computes them.")
            .WithJsonBody<EmbedRequest>().ProducesSeedErrors(compute: true);
        app.MapPost("/bertscore", BertScoreAsync).WithName("bertscore").WithSummary("BERTScore precision, recall and F1 per candidate, as bert_score computes them.")
            .WithJsonBody<BertScoreRequest>().ProducesSeedErrors(compute: true);
    }

    private static async Task<JsonHttpResult<HealthResponse>> HealthAsync(HostRouter router, HttpContext context)
    {
        if (router.Hosts.Count == 0)
        {
            await router.RefreshAsync(context.RequestAborted);
        }

        var hosts = router.Hosts;
        var body = new HealthResponse(
            hosts.Count > 0 ? "ok" : "unavailable",
            hosts.Count > 0 ? DeviceKind(hosts[0].Device) : "none",
            hosts.Count,
            hosts.Count > 0,
            [.. hosts.SelectMany(Faults)]);
        return TypedResults.Json(body, ApiJson.Relaxed.HealthResponse, statusCode: hosts.Count > 0 ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
    }

    private static async Task<Ok<InfoResponse>> InfoAsync(HostRouter router, IClusterClient client, HttpContext context)
    {
        var infos = await ClusterView.InfosAsync(router, client, context.RequestAborted);
        var first = infos.FirstOrDefault();
        return TypedResults.Ok(new InfoResponse(
            first is null ? "none" : DeviceKind(first.Device),
            first?.DeviceName,
            first?.VramTotalMb,
            first?.VramUsedMb,
            first?.CudaVersion,
            [.. infos.SelectMany(i => i.LoadedModels.Select(m => m.Name)).Distinct().Order()],
            first?.Version ?? typeof(SeedEndpoints).Assembly.GetName().Version?.ToString(3),
            [.. infos.Select(i => new HostInfoResponse(
                i.Host,
                i.Device,
                i.DeviceName,
                i.VramTotalMb,
                i.VramUsedMb,
                i.CudaVersion,
                [.. i.LoadedModels.Select(m => m.Name)],
                [.. i.LoadedModels.Select(m => Loaded(m, i.Memory?.Models.FirstOrDefault(x => x.Name == m.Name)))],
                i.Version,
                i.Memory is { BudgetBytes: not long.MaxValue } memory ? memory.BudgetBytes : null,
                i.Memory?.UsedBytes,
                i.Memory?.Evictions))]));
    }

    private static LoadedModelResponse Loaded(ModelDescription m, ModelMemoryInfo? memory) => new(
        m.Name, m.Provider, m.Embedding, m.BertScore, m.Dimensions, m.Layers, m.LoadedPrecisions ?? [Precisions.Fp32],
        memory?.Bytes, memory?.WeightBytes, memory?.LastUsed.ToUniversalTime(), memory?.InFlight, memory?.Loads);

    private static async Task<Ok<StatusResponse>> StatusAsync(HostRouter router, IClusterClient client, HttpContext context)
    {
        var statuses = await ClusterView.StatusesAsync(router, client, context.RequestAborted);
        var maxConcurrent = statuses.Sum(s => s.MaxConcurrent);
        var inFlight = statuses.Sum(s => s.InFlight);
        return TypedResults.Ok(new StatusResponse(
            new QueueResponse(maxConcurrent, inFlight, Math.Max(0, maxConcurrent - inFlight), statuses.Sum(s => s.Waiting)),
            SplitStatus.ActiveJobs(statuses),
            router.Strategy == RoutingStrategy.LeastBusy ? "least-busy" : "round-robin",
            [.. statuses.Select(s => new HostStatusResponse(
                s.Host, s.MaxConcurrent, s.InFlight, Math.Max(0, s.MaxConcurrent - s.InFlight), s.Waiting, [.. s.Jobs.Select(j => SplitStatus.Job(j, s.Host))], State(router, s.Host), s.MaxConcurrentSource,
                [.. router.Hosts.Where(h => h.Host == s.Host).SelectMany(Faults)]))]));
    }

    /// <summary>The models a host reports failed or degraded, while the fronts send them elsewhere.</summary>
    private static IEnumerable<ModelFaultResponse> Faults(HostLoad host)
    {
        var now = DateTimeOffset.UtcNow;
        return (host.Faults ?? []).Where(f => f.Until > now).Select(f => new ModelFaultResponse(host.Host, f.Model, f.Kind, f.Reason, f.Until, f.Failures));
    }

    /// <summary>A host's availability as its last load report gave it, in the API's words.</summary>
    private static string State(HostRouter router, string host) =>
        router.Hosts.FirstOrDefault(h => h.Host == host) switch
        {
            { Availability: HostAvailability.Draining } => "draining",
            { } load when Faults(load).Any() => "degraded",
            _ => "serving",
        };

    private static async Task<Ok<EmbedResponse>> EmbedAsync(EmbedRequest request, ScatterGather cluster, IOptions<FrontDefaults> defaults, HttpContext context)
    {
        var texts = (IReadOnlyList<string>)request.Texts!;
        var model = request.Model ?? defaults.Value.EmbedModel;
        var work = new EmbedWork(model, texts, request.Normalize, request.Truncate ?? true, Precision: request.Precision);
        var batch = await cluster.EmbedAsync(work, context.RequestAborted);

        context.Response.Headers["X-Gpu-Host"] = batch.Host;
        var rows = new float[batch.Count][];
        for (var i = 0; i < rows.Length; i++)
        {
            rows[i] = batch.Vector(i).ToArray();
        }

        return TypedResults.Ok(new EmbedResponse(rows, model, batch.Dimensions, batch.ComputePrecision));
    }

    private static async Task<Ok<BertScoreResponse>> BertScoreAsync(BertScoreRequest request, ScatterGather cluster, IOptions<FrontDefaults> defaults, HttpContext context)
    {
        var candidates = (IReadOnlyList<string>)request.Candidates!;
        var references = request.References!.Groups;
        var model = request.ModelType ?? request.Model ?? defaults.Value.BertScoreModel;
        var baseline = request.Baseline is { } b ? new BaselineValues((float)b.Precision!.Value, (float)b.Recall!.Value, (float)b.F1!.Value) : null;
        var work = new BertScoreWork(
            model, candidates, references, request.NumLayers, request.Idf ?? false, request.RescaleWithBaseline ?? false, request.Lang ?? "en", baseline, Precision: request.Precision);
        var scores = await cluster.BertScoreAsync(work, context.RequestAborted);

        context.Response.Headers["X-Gpu-Host"] = scores.Host;
        return TypedResults.Ok(new BertScoreResponse(Finite(scores.Precision), Finite(scores.Recall), Finite(scores.F1), model, scores.NumLayers, scores.Hash, scores.ComputePrecision));
    }

    /// <summary>bert_score can return NaN (a side whose tokens all weigh 0); JSON has no NaN, so it becomes null.</summary>
    private static float?[] Finite(float[] values) => [.. values.Select(v => float.IsFinite(v) ? v : (float?)null)];

    private static string DeviceKind(string device) => device.StartsWith("cuda", StringComparison.Ordinal) ? "cuda" : device;
}
