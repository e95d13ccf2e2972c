using System.Diagnostics;
using System.Globalization;
using Prometheus;

namespace OrleansGpu.Api.Telemetry;

/// <summary>
/// prometheus-net's HTTP series (same names), with labels that cannot grow without bound: the method is one of the
/// standard methods or <c>other</c>, and the endpoint is the route's template or <c>unmatched</c>. prometheus-net's own
/// middleware labels the raw method, so every made-up method a client sends became new series.
/// </summary>
public sealed class HttpMetrics(RequestDelegate next)
{
    public const string OtherMethod = "other";

    public const string UnmatchedEndpoint = "unmatched";

    private static readonly string[] Labels = ["code", "method", "endpoint"];

    private static readonly Counter Requests = Metrics.CreateCounter(
        "http_requests_received_total", "HTTP requests processed by the front.", Labels);

    private static readonly Histogram Duration = Metrics.CreateHistogram(
        "http_request_duration_seconds", "Duration of HTTP requests processed by the front.",
        new HistogramConfiguration { LabelNames = Labels, Buckets = Histogram.ExponentialBuckets(0.001, 2, 18) });

    private static readonly Gauge InProgress = Metrics.CreateGauge(
        "http_requests_in_progress", "HTTP requests the front is processing now.", "method", "endpoint");

    private static readonly HashSet<string> KnownMethods = new(
        [HttpMethods.Get, HttpMethods.Head, HttpMethods.Post, HttpMethods.Put, HttpMethods.Delete, HttpMethods.Patch, HttpMethods.Options, HttpMethods.Trace, HttpMethods.Connect],
        StringComparer.Ordinal);

    public async Task InvokeAsync(HttpContext context)
    {
        var started = Stopwatch.GetTimestamp();
        var method = KnownMethods.TryGetValue(context.Request.Method, out var known) ? known : OtherMethod;
        var endpoint = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? UnmatchedEndpoint;
        var inProgress = InProgress.WithLabels(method, endpoint);
        inProgress.Inc();
        try
        {
            await next(context);
        }
        finally
        {
            inProgress.Dec();
            var code = context.Response.StatusCode.ToString(CultureInfo.InvariantCulture);
            Requests.WithLabels(code, method, endpoint).Inc();
            Duration.WithLabels(code, method, endpoint).Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }
}
