using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using FineTuneService.Core.Domain;
using FineTuneService.Service.Tests.Infrastructure;
using FineTuneService.Service.Tests.Worker;

namespace FineTuneService.Service.Tests.Deployment;

/// <summary>The worker process's Prometheus endpoint while it trains: queue depth and throughput are there.</summary>
[Collection(PostgresCollection.Name)]
public sealed partial class MetricsEndpointTests(PostgresServer server)
{
    [Fact]
    public async Task The_metrics_endpoint_shows_queue_depth_and_tokens_per_second_while_a_job_runs()
    {
        await using var control = await WorkerHost.StartAsync(server, trains: false);
        var file = await control.UploadFileAsync(TinyBaseModel.Jsonl(24));
        var running = await control.AddJobAsync(file, epochs: 400);
        var waiting = await control.AddJobAsync(file, epochs: 1);
        var port = FreePort();
        var cache = Directory.CreateTempSubdirectory("fts-worker-process-").FullName;
        try
        {
            await using var worker = WorkerProcess.Start(control.ConnectionString, cache, new Dictionary<string, string?>
            {
                ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}",
                ["Telemetry:Prometheus"] = "true",
            });
            control.Enqueue(running.Id);
            await control.WaitForAsync(running.Id, j => j.Status == JobStatus.Running, timeoutSeconds: 180);
            control.Enqueue(waiting.Id); // one device: this one waits in the gpu queue

            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            var text = await Eventually.UntilAsync(() => ScrapeAsync(http),
                t => Value(t, "fts_training_tokens_per_second", "device=\"cpu\"") > 0 && Value(t, "fts_queue_depth", "queue=\"gpu\"") >= 1,
                TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(500));

            Assert.True(Value(text, "fts_training_tokens_per_second", "device=\"cpu\"") > 0, $"no throughput while training:\n{text}\n{worker.Output}");
            Assert.Equal(1, Value(text, "fts_queue_depth", "queue=\"gpu\""));
            Assert.Equal(1, Value(text, "fts_jobs", "state=\"running\""));
            Assert.True(Value(text, "fts_training_tokens_total", "device=\"cpu\"") > 0);
            Assert.Contains("http_server_request_duration_seconds", text); // ASP.NET Core's own meters are exported too

            await control.SetAsync(running.Id, j => j.Control = JobControl.Cancel);
            await control.SetAsync(waiting.Id, j => j.Control = JobControl.Cancel);
            await control.WaitForTerminalAsync(running.Id);
            await worker.TerminateAsync(TimeSpan.FromSeconds(90));
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }

    private static async Task<string> ScrapeAsync(HttpClient http)
    {
        try
        {
            return await http.GetStringAsync("/metrics");
        }
        catch (HttpRequestException)
        {
            return ""; // not listening yet
        }
    }

    /// <summary>The value of the first sample of <paramref name="metric"/> (a unit suffix may follow) whose labels contain <paramref name="label"/>; NaN when absent.</summary>
    private static double Value(string exposition, string metric, string label)
    {
        foreach (Match m in Sample().Matches(exposition))
            if (m.Groups["name"].Value.StartsWith(metric, StringComparison.Ordinal) && m.Groups["labels"].Value.Contains(label))
                return double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture);
        return double.NaN;
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?<labels>[^}]*)\} (?<value>\S+)", RegexOptions.Multiline)]
    private static partial Regex Sample();

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
