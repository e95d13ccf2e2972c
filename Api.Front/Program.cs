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
using OrleansGpu.Api.Scatter;
using OrleansGpu.Grains.Hosting;
using Prometheus;

Observability.ExportMetrics();
var builder = WebApplication.CreateBuilder(args);
builder.Configuration.AddLogLevelDefaults();

ListenAddresses.Configure(builder, ApiKeyOptionsSetup.KeyConfigured(builder.Configuration));
builder.AddFrontOptions();
builder.AddCluster();

builder.Services.AddSettings<RoutingOptions, RoutingOptionsValidator>(builder.Configuration, RoutingOptions.Section, RoutingOptions.Aliases);
builder.Services.AddSingleton<HostRouter>();
builder.Services.AddHostedService(sp => sp.GetRequiredService<HostRouter>());
builder.Services.AddSettings<SplitOptions, SplitOptionsValidator>(builder.Configuration, SplitOptions.Section, SplitOptions.Aliases);
builder.Services.AddSingleton<ScatterGather>();
builder.Services.AddHostedService<StartupBanner>();
builder.Services.AddTracing(builder.Configuration, "orleansgpu-front", t => t.AddAspNetCoreInstrumentation());

builder.Services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
    .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
builder.Services.AddAuthorization(o =>
{
    // Deny by default: every route, unknown ones included, needs the key; /health opts out explicitly.
    o.FallbackPolicy = new AuthorizationPolicyBuilder().RequireAuthenticatedUser().Build();
});
builder.AddApiConventions();

var app = builder.Build();

// A bad setting stops the start with what to fix, before anything starts and without a stack trace.
if (FrontServices.SettingProblems(app.Services) is { Count: > 0 } problems)
{
    Console.Error.WriteLine($"Api.Front cannot start: {string.Join(" ", problems)}");
    return 1;
}

app.UseApiConventions();
app.UseRouting();
app.UseAuthentication();
app.UseAuthorization();
app.UseMiddleware<HttpMetrics>();

app.MapSeedEndpoints();
app.MapOpenAiEndpoints();
app.MapOpenApi();
app.MapMetrics();
app.MapOrleansDashboard(ApiKeyAuthenticationHandler.DashboardPath).AddEndpointFilter(DashboardErrors.FilterAsync).ExcludeFromDescription();

app.Run();
return Environment.ExitCode;

/// <summary>The entry point, visible to tests that host the front.</summary>
public partial class Program;
