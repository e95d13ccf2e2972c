using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using OpenTelemetry.Trace;
using Orleans.Dashboard;
using OrleansGpu.Api.Auth;
using OrleansGpu.Api.Endpoints;
using OrleansGpu.Api.Hosting;
using OrleansGpu.Api.Http;
using OrleansGpu.Api.Telemetry;
using OrleansGpu.Api.Routing;
using OrleansGpu.Grains.Hosting;
using Prometheus;

Observability.ExportMetrics();
var builder = WebApplication.CreateBuilder(args);
builder.Configuration.AddLogLevelDefaults();

var keys = ApiKeys.FromConfiguration(builder.Configuration);
var limits = RequestLimits.FromConfiguration(builder.Configuration);
ListenAddresses.Configure(builder, keys.Required);
builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = limits.MaxBodyBytes);

builder.AddCluster();

builder.Services.AddSingleton(keys);
builder.Services.AddSingleton(limits);
builder.Services.AddSingleton(FrontDefaults.FromConfiguration(builder.Configuration));
builder.Services.AddSettings<RoutingOptions, RoutingOptionsValidator>(builder.Configuration, RoutingOptions.Section, RoutingOptions.Aliases);
builder.Services.AddSingleton<HostRouter>();
builder.Services.AddHostedService(sp => sp.GetRequiredService<HostRouter>());
builder.Services.AddHostedService<StartupBanner>();
builder.Services.AddTracing(builder.Configuration, "orleansgpu-front", t => t.AddAspNetCoreInstrumentation());

builder.Services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
    .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
builder.Services.AddAuthorization(o =>
{
    // Deny by default: every route, unknown ones included, needs the key; /health opts out explicitly.
    o.FallbackPolicy = new AuthorizationPolicyBuilder().RequireAuthenticatedUser().Build();
});
builder.Services.AddOpenApi();
builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.Encoder = ApiErrors.Json.Encoder);

var app = builder.Build();

app.UseMiddleware<ErrorHandling>();
app.UseStatusCodePages(async status =>
{
    var context = status.HttpContext;
    await ApiErrors.WriteAsync(context, context.Response.StatusCode, context.Response.StatusCode switch
    {
        404 => "not_found",
        405 => "method_not_allowed",
        _ => "error",
    }, context.Response.StatusCode switch
    {
        404 => $"No route {context.Request.Method} {context.Request.Path}.",
        405 => $"{context.Request.Method} is not allowed on {context.Request.Path}.",
        _ => "The request failed.",
    });
});
app.UseRouting();
app.UseAuthentication();
app.UseAuthorization();
app.UseMiddleware<HttpMetrics>();

app.MapSeedEndpoints();
app.MapOpenAiEndpoints();
app.MapOpenApi();
app.MapMetrics();
app.MapOrleansDashboard(ApiKeyAuthenticationHandler.DashboardPath);

app.Run();

/// <summary>The entry point, visible to tests that host the front.</summary>
public partial class Program;
