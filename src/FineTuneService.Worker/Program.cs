using FineTuneService.Core.Hosting;
using FineTuneService.Worker.Hosting;

// Worker host: trains fine-tuning jobs from the gpu queue, one Hangfire server per configured device.
var builder = Host.CreateApplicationBuilder(args);

builder.AddFineTuneDatabase();   // EF Core on PostgreSQL, transient-fault retries, migrations at start (Development)
builder.AddArtifactStore();      // datasets, checkpoints and weights, content-addressed in PostgreSQL
builder.AddHangfireStorage();    // Hangfire on PostgreSQL: LISTEN/NOTIFY wake-up, sliding invisibility timeout
builder.AddFineTuneWorker();     // device servers, job runner, base-model cache, crash recovery

builder.Build().Run();
