using FineTuneService.Api.Endpoints;
using FineTuneService.Api.Hosting;
using FineTuneService.Api.Inference;
using FineTuneService.Api.Jobs;
using FineTuneService.Core.Hosting;

var builder = WebApplication.CreateBuilder(args);

builder.AddSecretFiles();           // key-per-file configuration from /run/secrets (connection strings, admin key)
builder.AddFineTuneDatabase();      // EF Core on PostgreSQL, migrations at start (Development by default)
builder.AddArtifactStore();         // chunked, content-addressed blobs in PostgreSQL
builder.AddArtifactRetention();     // recurring: prune checkpoints, collect unreferenced artifacts and stale uploads
builder.AddHangfireStorage();       // job queues in PostgreSQL (LISTEN/NOTIFY)
builder.AddBaseModelRegistry();     // imports Models:Directory in the background once migrated (readiness waits)
builder.AddOpenAiJson();
builder.AddOpenAiErrors();
builder.AddApiKeyAuthentication();
builder.AddAdminDashboard();        // Hangfire dashboard login; Data Protection keys shared by replicas in PostgreSQL
builder.AddForwardedHeaders();      // X-Forwarded-* from a trusted TLS proxy (ForwardedHeaders:Enabled)
builder.AddFineTuningJobs();
builder.AddJobResponseCache();     // polls of a job, its events and checkpoints served from memory until NOTIFY says it changed
builder.AddChatCompletions();       // forwarded to a live worker inference endpoint (YARP)
builder.AddFileValidation();        // default queue served in-process; training runs on the worker host
builder.AddApiDocumentation();
builder.AddFineTuneTelemetry("fts-api");   // OpenTelemetry: OTLP when configured, /metrics with Telemetry:Prometheus

var app = builder.Build();

app.UseConfiguredForwardedHeaders();
app.UseExceptionHandler();
app.UseOpenAiStatusCodes();
app.UseAuthentication();
app.UseAuthorization();
app.UseJobResponseCache();
app.UseApiDocumentation();
app.UseAdminHangfireDashboard();

app.MapHealthEndpoints();           // /healthz (process up), /readyz (database, migrations, base models)
app.MapTelemetryEndpoints();       // /metrics (Telemetry:Prometheus)
app.MapAdmin();
app.MapApiKeys();
app.MapAdminSafety();
app.MapAdminHardening();
app.MapFiles();
app.MapFineTuningJobs();
app.MapChatCompletions();
app.MapModels();
app.MapSafetyEvaluations();
app.MapGet("/", () => Results.Redirect("/swagger")).ExcludeFromDescription();

app.Run();

/// <summary>The API's entry point.</summary>
public partial class Program;

namespace FineTuneService.Api
{
    /// <summary>
    /// Names this assembly for <c>WebApplicationFactory&lt;ApiEntryPoint&gt;</c>: test projects that also see the
    /// worker host's internal <c>Program</c> would find <c>Program</c> ambiguous.
    /// </summary>
    public sealed class ApiEntryPoint;
}
