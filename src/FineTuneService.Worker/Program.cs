using FineTuneService.Core.Hosting;
using FineTuneService.Ml.Runtime;
using FineTuneService.Worker.Hosting;
using FineTuneService.Worker.Inference;
using Microsoft.AspNetCore.Builder;

// Worker host: trains fine-tuning jobs from the gpu queue, one Hangfire server per configured device. Its HTTP port
// serves health (/healthz, /readyz) and, optionally, Prometheus metrics; chat completions have their own Kestrel
// endpoint (Inference:Listen).
CpuThreadWaits.UsePassiveWaits(); // before libtorch loads: its OpenMP threads sleep between operations, not spin

var builder = WebApplication.CreateBuilder(args);

builder.AddSecretFiles();        // key-per-file configuration from /run/secrets (connection strings)
builder.AddFineTuneDatabase();   // EF Core on PostgreSQL, transient-fault retries, migrations at start (Development)
builder.AddArtifactStore();      // datasets, checkpoints and weights, content-addressed in PostgreSQL
builder.AddHangfireStorage();    // Hangfire on PostgreSQL: LISTEN/NOTIFY wake-up, sliding invisibility timeout
builder.AddFineTuneWorker();     // device servers, job runner, base-model cache, crash recovery
builder.AddInferenceServer();    // chat completions: Kestrel endpoint registered in PostgreSQL, continuous batching
builder.AddFineTuneTelemetry("fts-worker"); // OpenTelemetry: OTLP when configured, /metrics with Telemetry:Prometheus

var app = builder.Build();

app.MapHealthEndpoints();        // /healthz (process up), /readyz (database, migrations, device servers)
app.MapTelemetryEndpoints();     // /metrics (Telemetry:Prometheus)

app.Run();
