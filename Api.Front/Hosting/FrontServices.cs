using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using OrleansGpu.Api.Auth;
using OrleansGpu.Api.Contracts;
using OrleansGpu.Api.Endpoints;
using OrleansGpu.Api.Http;

namespace OrleansGpu.Api.Hosting;

/// <summary>The front's own settings, and the HTTP conventions every route shares: JSON, errors, validation, guards, logs.</summary>
public static class FrontServices
{
    /// <summary>The front's settings, checked at start: a bad value stops the start with a message that names it.</summary>
    public static void AddFrontOptions(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddSingleton<IConfigureOptions<RequestLimits>, RequestLimitsSetup>();
        services.AddSingleton<IValidateOptions<RequestLimits>, RequestLimitsSetup>();
        services.AddOptions<RequestLimits>().ValidateOnStart();
        services.AddSingleton<IConfigureOptions<ApiKeyOptions>, ApiKeyOptionsSetup>();
        services.AddSingleton<IValidateOptions<ApiKeyOptions>, ApiKeyOptionsSetup>();
        services.AddOptions<ApiKeyOptions>().ValidateOnStart();
        services.AddSingleton<IConfigureOptions<FrontDefaults>, FrontDefaultsSetup>();
        services.AddSingleton<IValidateOptions<FrontDefaults>, FrontDefaultsSetup>();
        services.AddOptions<FrontDefaults>().ValidateOnStart();
        services.AddSingleton<ApiKeys>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddHostedService<ListenGuard>();

        // The body limit is enforced by the reader, on the JSON's bytes (JsonRequest). Kestrel's own limit is only a
        // backstop: for a chunked body it counts the chunks' framing too, so at the same value it would refuse a
        // chunked body that the same bytes with a Content-Length pass.
        services.AddOptions<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions>()
            .Configure<IConfiguration>((kestrel, configuration) =>
            {
                // Read without validation: the server is built before the settings are checked (SettingProblems).
                var limits = new RequestLimits();
                new RequestLimitsSetup(configuration).Configure(limits);
                kestrel.Limits.MaxRequestBodySize = 2 * limits.MaxBodyBytes + 64 * 1024;
            });
    }

    /// <summary>What is wrong with the front's settings, each naming its variable; empty when they are fine.</summary>
    public static IReadOnlyList<string> SettingProblems(IServiceProvider services)
    {
        var problems = new List<string>();
        foreach (var read in new Action[]
        {
            () => _ = services.GetRequiredService<IOptions<RequestLimits>>().Value,
            () => _ = services.GetRequiredService<IOptions<Auth.ApiKeyOptions>>().Value,
            () => _ = services.GetRequiredService<IOptions<FrontDefaults>>().Value,
        })
        {
            try
            {
                read();
            }
            catch (OptionsValidationException ex)
            {
                problems.AddRange(ex.Failures);
            }
        }

        return problems;
    }

    public static void AddApiConventions(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.TypeInfoResolverChain.Insert(0, ApiJson.Default);
            o.SerializerOptions.PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.SnakeCaseLower;
            o.SerializerOptions.NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.Strict;
            o.SerializerOptions.Encoder = ApiJson.Relaxed.Options.Encoder;
        });

        // One error shape whoever answers: exceptions, validation, status codes, authentication.
        services.AddSingleton<IProblemDetailsWriter, ApiErrorWriter>();
        services.AddProblemDetails();
        services.AddExceptionHandler<ApiExceptionHandler>();
        services.AddValidation();
        services.AddOpenApi(ApiDocumentation.Configure);

        // ASP.NET Core's request lines print the query string, where the dashboard's login carries the key;
        // RequestLog writes them instead, without it. (Set here, after the configuration's rules, so they hold.)
        foreach (var category in RequestLog.UrlLoggingCategories)
        {
            builder.Logging.AddFilter(category, LogLevel.Warning);
        }
    }

    public static void UseApiConventions(this WebApplication app)
    {
        app.UseMiddleware<RequestLog>();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseMiddleware<LocalOnlyGuard>();
        app.UseMiddleware<DashboardLogin>();
    }
}
