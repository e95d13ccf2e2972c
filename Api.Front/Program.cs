using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Options;
using Orleans.Dashboard;
using OrleansGpu.Api.Auth;
using OrleansGpu.Api.Endpoints;
using OrleansGpu.Api.Hosting;
using OrleansGpu.Api.Http;
using OrleansGpu.Api.Routing;
using Prometheus;

var builder = WebApplication.CreateBuilder(args);

ListenAddresses.Configure(builder, ApiKeyOptionsSetup.KeyConfigured(builder.Configuration));
builder.AddFrontOptions();
builder.AddCluster();

builder.Services.AddSingleton(RoutingOptions.FromConfiguration(builder.Configuration));
builder.Services.AddSingleton<HostRouter>();
builder.Services.AddHostedService(sp => sp.GetRequiredService<HostRouter>());

builder.Services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
    .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
builder.Services.AddAuthorization(o =>
{
    // Deny by default: every route, unknown ones included, needs the key; /health opts out explicitly.
    o.FallbackPolicy = new AuthorizationPolicyBuilder().RequireAuthenticatedUser().Build();
});
builder.AddApiConventions();

var app = builder.Build();

app.UseApiConventions();
app.UseRouting();
app.UseAuthentication();
app.UseAuthorization();
app.UseHttpMetrics();

app.MapSeedEndpoints();
app.MapOpenAiEndpoints();
app.MapOpenApi();
app.MapMetrics();
app.MapOrleansDashboard(ApiKeyAuthenticationHandler.DashboardPath).AddEndpointFilter(DashboardErrors.FilterAsync).ExcludeFromDescription();

try
{
    app.Run();
}
catch (OptionsValidationException ex)
{
    // A bad setting stops the start with what to fix, not a stack trace.
    Console.Error.WriteLine($"Api.Front cannot start: {string.Join(" ", ex.Failures)}");
    Environment.ExitCode = 1;
}

/// <summary>The entry point, visible to tests that host the front.</summary>
public partial class Program;
