using System.Net;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using FineTuneService.Api.Auth;
using FineTuneService.Api.Documentation;
using FineTuneService.Api.Errors;
using FineTuneService.Api.Files;
using FineTuneService.Api.Jobs;
using FineTuneService.Core.Data;
using FineTuneService.Core.Jobs;
using Hangfire;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;

namespace FineTuneService.Api.Hosting;

/// <summary>One registration per concern of the API host; Program.cs reads as their list.</summary>
public static class ApiHostingExtensions
{
    /// <summary>OpenAI's wire format: snake_case JSON, and malformed bodies reported (not silently 400) so they get the error envelope.</summary>
    public static IHostApplicationBuilder AddOpenAiJson(this IHostApplicationBuilder builder)
    {
        builder.Services.ConfigureHttpJsonOptions(options =>
        {
            options.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
            options.SerializerOptions.DictionaryKeyPolicy = null;
            // Enum members on the wire as their snake_case names (EstimateBasis.Measured → "measured"), never numbers.
            options.SerializerOptions.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower, allowIntegerValues: false));
        });
        builder.Services.Configure<RouteHandlerOptions>(options => options.ThrowOnBadRequest = true);
        return builder;
    }

    /// <summary>One exception handler: OpenAI error envelopes under /v1, ProblemDetails elsewhere.</summary>
    public static IHostApplicationBuilder AddOpenAiErrors(this IHostApplicationBuilder builder)
    {
        builder.Services.AddProblemDetails();
        builder.Services.AddExceptionHandler<OpenAiExceptionHandler>();
        return builder;
    }

    /// <summary>
    /// Bearer API keys: the admin key (Auth:AdminKey or FTS_ADMIN_KEY; the documented dev key only in Development)
    /// and tenant keys stored as SHA-256. Policies: "tenant", "admin" and "tenant_or_admin".
    /// </summary>
    public static IHostApplicationBuilder AddApiKeyAuthentication(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<AuthOptions>()
            .BindConfiguration(AuthOptions.Section)
            .Configure<IConfiguration, IHostEnvironment>((options, configuration, environment) =>
            {
                options.AdminKey = NullIfBlank(options.AdminKey) ?? NullIfBlank(configuration["FTS_ADMIN_KEY"]);
                if (options.AdminKey is null && environment.IsDevelopment()) options.AdminKey = AuthOptions.DevelopmentAdminKey;
            })
            .Validate(options => options.AdminKey is { Length: >= 16 },
                "An admin key of at least 16 characters is required: set FTS_ADMIN_KEY (or Auth:AdminKey).")
            .Validate<IHostEnvironment>((options, environment) => environment.IsDevelopment() || options.AdminKey != AuthOptions.DevelopmentAdminKey,
                $"The development admin key '{AuthOptions.DevelopmentAdminKey}' is refused outside Development: set FTS_ADMIN_KEY to a secret.")
            .Validate(options => options.KeyCacheTtl >= TimeSpan.Zero && options.KeyCacheTtl <= TimeSpan.FromMinutes(10),
                "Auth:KeyCacheTtl must be between 0 and 10 minutes (a revoked key works on other replicas for that long).")
            .ValidateOnStart();
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<TenantKeyCache>();

        builder.Services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        builder.Services.AddAuthorizationBuilder()
            .AddPolicy(FtsClaims.TenantPolicy, policy => policy.RequireClaim(FtsClaims.TenantIdClaim))
            .AddPolicy(FtsClaims.AdminPolicy, policy => policy.RequireRole(FtsClaims.AdminRole))
            .AddPolicy(FtsClaims.TenantOrAdminPolicy, policy => policy.RequireAssertion(context =>
                context.User.HasClaim(c => c.Type == FtsClaims.TenantIdClaim) || context.User.IsInRole(FtsClaims.AdminRole)));
        return builder;
    }

    /// <summary>
    /// The Hangfire dashboard's browser login (<see cref="HangfireDashboardAccess"/>). Its cookie is protected with a
    /// Data Protection key ring kept in PostgreSQL under one application name, so every API replica reads the cookie
    /// another issued, and a redeploy keeps it valid.
    /// </summary>
    public static IHostApplicationBuilder AddAdminDashboard(this IHostApplicationBuilder builder)
    {
        builder.Services.AddDataProtection()
            .SetApplicationName(DataProtectionApplicationName)
            .PersistKeysToDbContext<FineTuneDbContext>();
        builder.Services.AddSingleton<HangfireDashboardAccess>();
        return builder;
    }

    /// <summary>Data Protection's application name: replicas sharing keys must share it (it isolates payloads per app).</summary>
    public const string DataProtectionApplicationName = "FineTuneService";

    /// <summary>
    /// Behind a TLS-terminating proxy: <c>X-Forwarded-For</c>/<c>-Proto</c>/<c>-Host</c> from the proxies listed in
    /// <c>ForwardedHeaders:KnownProxies</c> (addresses) or <c>ForwardedHeaders:KnownNetworks</c> (CIDR) are applied,
    /// so the request counts as HTTPS (Secure cookies, https links) and the client address is the real one. Off unless
    /// <c>ForwardedHeaders:Enabled</c>; headers from anyone else are ignored.
    /// </summary>
    public static IHostApplicationBuilder AddForwardedHeaders(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<ForwardedHeadersSettings>()
            .BindConfiguration(ForwardedHeadersSettings.Section)
            .Validate(s => s.KnownProxies.All(p => IPAddress.TryParse(p, out _)), "ForwardedHeaders:KnownProxies must be IP addresses.")
            .Validate(s => s.KnownNetworks.All(n => System.Net.IPNetwork.TryParse(n, out _)), "ForwardedHeaders:KnownNetworks must be CIDR ranges (10.0.0.0/8).")
            .ValidateOnStart();
        builder.Services.AddOptions<ForwardedHeadersOptions>().Configure<IOptions<ForwardedHeadersSettings>>((options, settings) =>
        {
            options.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto | ForwardedHeaders.XForwardedHost;
            options.ForwardLimit = settings.Value.ForwardLimit;
            if (settings.Value.KnownProxies.Length + settings.Value.KnownNetworks.Length == 0) return; // loopback only
            options.KnownProxies.Clear();
            options.KnownIPNetworks.Clear();
            foreach (var proxy in settings.Value.KnownProxies) options.KnownProxies.Add(IPAddress.Parse(proxy));
            foreach (var network in settings.Value.KnownNetworks) options.KnownIPNetworks.Add(System.Net.IPNetwork.Parse(network));
        });
        return builder;
    }

    /// <summary>Applies forwarded headers first in the pipeline, when <c>ForwardedHeaders:Enabled</c>.</summary>
    public static WebApplication UseConfiguredForwardedHeaders(this WebApplication app)
    {
        if (app.Services.GetRequiredService<IOptions<ForwardedHeadersSettings>>().Value.Enabled) app.UseForwardedHeaders();
        return app;
    }

    /// <summary>Job lifecycle services: promotion out of validating_files and cancel/pause/resume.</summary>
    public static IHostApplicationBuilder AddFineTuningJobs(this IHostApplicationBuilder builder)
    {
        builder.Services.AddScoped<JobPromotion>();
        builder.Services.AddSingleton<WorkerPool>();
        builder.Services.AddSingleton<JobEstimator>();
        builder.Services.AddScoped<JobTransitions>();
        return builder;
    }

    /// <summary>
    /// Background file validation: <see cref="IFileValidationJob"/> and an in-process Hangfire server for the
    /// default queue only. Training (gpu queue) belongs to the worker host.
    /// </summary>
    public static IHostApplicationBuilder AddFileValidation(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<FilesOptions>()
            .BindConfiguration(FilesOptions.Section)
            .Validate(o => o.MaxUploadBytes > 0, "Files:MaxUploadBytes must be positive.")
            .ValidateOnStart();
        builder.Services.AddScoped<IFileValidationJob, FileValidationJob>();
        builder.Services.AddHangfireServer(options =>
        {
            options.ServerName = $"api:{Environment.MachineName}:{Environment.ProcessId}";
            options.Queues = [Queues.Default];
            options.WorkerCount = 2;
        });
        return builder;
    }

    /// <summary>Swagger UI at /swagger, documenting the tenant and admin key schemes and the handlers' XML comments.</summary>
    public static IHostApplicationBuilder AddApiDocumentation(this IHostApplicationBuilder builder)
    {
        builder.Services.AddEndpointsApiExplorer();
        builder.Services.AddSwaggerGen(options =>
        {
            options.SwaggerDoc("v1", new OpenApiInfo
            {
                Title = "FineTuneService",
                Version = "v1",
                Description = "OpenAI-compatible fine-tuning API with safety strategies. Authorize with a tenant key (sk-fts-...) or the admin key.",
            });
            options.AddSecurityDefinition(SecuritySchemesOperationFilter.TenantScheme, new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                Description = "Tenant API key (sk-fts-...) from POST /v1/admin/tenants.",
            });
            options.AddSecurityDefinition(SecuritySchemesOperationFilter.AdminScheme, new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                Description = "The admin key (FTS_ADMIN_KEY): the Admin endpoints, and safety evaluations of any tenant's models.",
            });
            // Each operation names the scheme of its authorization policy, so admin routes show the admin padlock.
            options.OperationFilter<SecuritySchemesOperationFilter>();
            options.SchemaFilter<SafetySchemaFilter>(); // safety.strategy and safety.params from the strategy registry
            options.SchemaFilter<JudgeSchemaFilter>(); // judge names and descriptions from the judge registry
            options.SchemaFilter<HardeningSchemaFilter>(); // the harden request's method and params from the hardening registry
            var xml = Path.Combine(AppContext.BaseDirectory, $"{Assembly.GetExecutingAssembly().GetName().Name}.xml");
            if (File.Exists(xml)) options.IncludeXmlComments(xml);
        });
        return builder;
    }

    /// <summary>Swagger UI and JSON at /swagger.</summary>
    public static WebApplication UseApiDocumentation(this WebApplication app)
    {
        app.UseSwagger();
        app.UseSwaggerUI(options => options.DocumentTitle = "FineTuneService API");
        return app;
    }

    /// <summary>
    /// /v1 responses that end with an error status and no body (unknown route, wrong method) still get the envelope.
    /// </summary>
    public static WebApplication UseOpenAiStatusCodes(this WebApplication app)
    {
        app.UseStatusCodePages(async context =>
        {
            var http = context.HttpContext;
            if (!OpenAiRoutes.Matches(http.Request.Path)) return;
            var error = http.Response.StatusCode switch
            {
                404 => ApiException.NotFound("route", $"{http.Request.Method} {http.Request.Path}"),
                405 => new ApiException(405, $"Method {http.Request.Method} is not allowed on {http.Request.Path}.", "invalid_request_error", null, "method_not_allowed"),
                var status => new ApiException(status, $"Request failed with status {status}.", status >= 500 ? "server_error" : "invalid_request_error"),
            };
            var json = http.RequestServices.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions;
            await http.Response.WriteAsJsonAsync(OpenAiError.From(error), json);
        });
        return app;
    }

    /// <summary>The Hangfire dashboard at /hangfire for the admin key (bearer, or the cookie from /hangfire/login).</summary>
    public static WebApplication UseAdminHangfireDashboard(this WebApplication app)
    {
        var access = app.Services.GetRequiredService<HangfireDashboardAccess>();
        app.UseWhen(context => context.Request.Path.StartsWithSegments(HangfireDashboardAccess.Path), branch => branch
            .Use(next => context => IsDashboardForm(context.Request) ? next(context)
                : Results.Problem(statusCode: StatusCodes.Status415UnsupportedMediaType,
                    title: "The dashboard accepts form posts only (application/x-www-form-urlencoded).").ExecuteAsync(context))
            .Use(next => context => access.HandleAsync(context, next)));
        app.UseHangfireDashboard(HangfireDashboardAccess.Path, new DashboardOptions
        {
            AsyncAuthorization = [access],
            DashboardTitle = "FineTuneService jobs",
            AppPath = "/swagger",
        });
        return app;
    }

    /// <summary>
    /// The dashboard posts small URL-encoded forms (stats, retries, deletes); anything else would fail inside
    /// Hangfire's form reader with a 500.
    /// </summary>
    private static bool IsDashboardForm(HttpRequest request) =>
        !HttpMethods.IsPost(request.Method)
        || (request.ContentLength is null or <= 64 * 1024
            && Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(request.ContentType, out var type)
            && type.MediaType.Equals("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase));

    private static string? NullIfBlank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
