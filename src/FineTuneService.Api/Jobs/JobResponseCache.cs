using System.ComponentModel.DataAnnotations;
using FineTuneService.Api.Auth;
using FineTuneService.Core.Hosting;
using Microsoft.AspNetCore.OutputCaching;
using Microsoft.Extensions.Options;
using Npgsql;

namespace FineTuneService.Api.Jobs;

/// <summary>Section <c>Api:JobResponseCache</c>.</summary>
public sealed class JobResponseCacheOptions
{
    public const string Section = "Api:JobResponseCache";

    /// <summary>Serve repeated polls of a job, its events and its checkpoints from memory until the job changes.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// The longest a cached answer lives even without a change notice: it bounds how old a queued job's
    /// <c>estimated_start</c> (computed from the clock) can be.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00")]
    public TimeSpan MaxAge { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long to wait before listening again after the notification connection failed.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:05:00")]
    public TimeSpan ReconnectDelay { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>
/// Listens on PostgreSQL's <c>fts_job_changes</c> channel (sent by triggers on the job, event and checkpoint tables,
/// whichever host or session wrote) and forgets the cached answers of the job that changed. Answers are cached only
/// while it listens: after a lost connection everything is forgotten, and nothing is cached until it listens again.
/// </summary>
internal sealed class JobChangeFeed(
    IOptions<DatabaseOptions> database, IOptions<JobResponseCacheOptions> options, IOutputCacheStore cache,
    TimeProvider clock, ILogger<JobChangeFeed> logger) : BackgroundService
{
    internal const string Channel = "fts_job_changes";
    private const string StatusChangedSuffix = "|status";

    private volatile bool _listening;
    private long _generation;

    /// <summary>True while change notices arrive, so that a cached answer is forgotten when its job changes.</summary>
    public bool IsListening => _listening;

    /// <summary>Moves on at every eviction: an answer read before an eviction is not stored after it.</summary>
    public long Generation => Interlocked.Read(ref _generation);

    /// <summary>Forgets one job's answers, and every job object when queue positions may have moved.</summary>
    public async ValueTask ForgetJobAsync(string jobId, bool statusChanged, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _generation);
        await cache.EvictByTagAsync(JobResponseCachePolicy.JobTag(jobId), cancellationToken);
        if (statusChanged) await cache.EvictByTagAsync(JobResponseCachePolicy.JobObjectsTag, cancellationToken);
    }

    /// <summary>Forgets every cached answer.</summary>
    public async ValueTask ForgetAllAsync(CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _generation);
        await cache.EvictByTagAsync(JobResponseCachePolicy.AllTag, cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Value.Enabled) return;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await ListenAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException)
            {
                logger.LogWarning("Job change notices stopped ({Message}); job answers are not cached until they resume.", e.Message);
            }
            finally
            {
                _listening = false;
                await ForgetAllAsync(CancellationToken.None);
            }
            await Task.Delay(options.Value.ReconnectDelay, clock, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    private async Task ListenAsync(CancellationToken stoppingToken)
    {
        await using var connection = new NpgsqlConnection(ListenerConnectionString());
        await connection.OpenAsync(stoppingToken);
        if (!await TriggersInstalledAsync(connection, stoppingToken))
        {
            logger.LogInformation("The job change triggers are not installed yet (migrations pending); job answers are not cached.");
            return;
        }

        var changes = new List<string>();
        connection.Notification += (_, notice) => changes.Add(notice.Payload);
        await using (var listen = new NpgsqlCommand($"LISTEN {Channel}", connection)) await listen.ExecuteNonQueryAsync(stoppingToken);

        // Changes made before LISTEN took effect sent notices nobody heard.
        await ForgetAllAsync(stoppingToken);
        _listening = true;
        logger.LogDebug("Listening for job changes; polls of jobs, events and checkpoints are cached.");

        while (!stoppingToken.IsCancellationRequested)
        {
            await connection.WaitAsync(stoppingToken);
            foreach (var payload in changes)
            {
                var statusChanged = payload.EndsWith(StatusChangedSuffix, StringComparison.Ordinal);
                await ForgetJobAsync(statusChanged ? payload[..^StatusChangedSuffix.Length] : payload, statusChanged, stoppingToken);
            }
            changes.Clear();
        }
    }

    private static async Task<bool> TriggersInstalledAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var query = new NpgsqlCommand("SELECT to_regproc('fts_notify_job_change') IS NOT NULL", connection);
        return await query.ExecuteScalarAsync(cancellationToken) is true;
    }

    /// <summary>Its own unpooled connection with keepalives, so a dead server is noticed while waiting.</summary>
    private string ListenerConnectionString() => new NpgsqlConnectionStringBuilder(database.Value.ConnectionString)
    {
        Pooling = false,
        KeepAlive = 5,
        ApplicationName = "fts-api-job-changes",
    }.ConnectionString;
}

/// <summary>
/// Output cache policy of the polled job routes: cached per tenant and query string, tagged with the job id, and
/// only while <see cref="JobChangeFeed"/> listens. Only 200 answers are kept, so a 404 for another tenant's job is
/// never cached.
/// </summary>
internal sealed class JobResponseCachePolicy : IOutputCachePolicy
{
    public const string Name = "job-responses";
    internal const string AllTag = "job-responses";
    internal const string JobObjectsTag = "job-objects";
    private const string GenerationItem = "fts:job-cache-generation";

    internal static string JobTag(string jobId) => "job:" + jobId;

    ValueTask IOutputCachePolicy.CacheRequestAsync(OutputCacheContext context, CancellationToken cancellation)
    {
        var http = context.HttpContext;
        var feed = http.RequestServices.GetRequiredService<JobChangeFeed>();
        var tenantId = http.User.TenantIdOrNull();
        if (!feed.IsListening || tenantId is null || !HttpMethods.IsGet(http.Request.Method)
            || http.Request.RouteValues["jobId"] is not string jobId)
            return ValueTask.CompletedTask;

        http.Items[GenerationItem] = feed.Generation;
        context.EnableOutputCaching = true;
        context.AllowCacheLookup = true;
        context.AllowCacheStorage = true;
        context.AllowLocking = true;
        context.CacheVaryByRules.VaryByValues["tenant"] = tenantId;
        context.CacheVaryByRules.QueryKeys = "*";
        context.ResponseExpirationTimeSpan = http.RequestServices.GetRequiredService<IOptions<JobResponseCacheOptions>>().Value.MaxAge;
        context.Tags.Add(AllTag);
        context.Tags.Add(JobTag(jobId));
        if (http.GetEndpoint()?.Metadata.GetMetadata<JobObjectRoute>() is not null) context.Tags.Add(JobObjectsTag);
        return ValueTask.CompletedTask;
    }

    ValueTask IOutputCachePolicy.ServeFromCacheAsync(OutputCacheContext context, CancellationToken cancellation) => ValueTask.CompletedTask;

    ValueTask IOutputCachePolicy.ServeResponseAsync(OutputCacheContext context, CancellationToken cancellation)
    {
        var http = context.HttpContext;
        var readBeforeAnEviction = http.Items[GenerationItem] is long generation
                                   && generation != http.RequestServices.GetRequiredService<JobChangeFeed>().Generation;
        if (http.Response.StatusCode != StatusCodes.Status200OK || readBeforeAnEviction) context.AllowCacheStorage = false;
        return ValueTask.CompletedTask;
    }
}

/// <summary>Marks the route that answers the job object itself, whose queue standing moves when any job's status changes.</summary>
internal sealed class JobObjectRoute;

internal static class JobResponseCacheExtensions
{
    public static IHostApplicationBuilder AddJobResponseCache(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<JobResponseCacheOptions>()
            .BindConfiguration(JobResponseCacheOptions.Section)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddOutputCache(options => options.AddPolicy(JobResponseCachePolicy.Name, new JobResponseCachePolicy()));
        builder.Services.AddSingleton<JobChangeFeed>();
        builder.Services.AddHostedService(services => services.GetRequiredService<JobChangeFeed>());
        return builder;
    }

    /// <summary>
    /// The output cache, after authorization so that a cached answer is served only to a caller allowed to see it.
    /// A change this host makes through the API forgets the cached answers before its response starts, so the
    /// caller's next poll reads its own write without waiting for the change notice.
    /// </summary>
    public static WebApplication UseJobResponseCache(this WebApplication app)
    {
        app.Use(async (context, next) =>
        {
            if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method) && ChangesJobs(context.Request.Path))
            {
                var feed = context.RequestServices.GetRequiredService<JobChangeFeed>();
                context.Response.OnStarting(() => feed.ForgetAllAsync(CancellationToken.None).AsTask());
            }
            await next(context);
        });
        app.UseOutputCache();
        return app;
    }

    private static bool ChangesJobs(PathString path) =>
        path.StartsWithSegments("/v1/fine_tuning") || path.StartsWithSegments("/v1/admin") || path.StartsWithSegments("/v1/models");

    /// <summary>Caches this polled job route (see <see cref="JobResponseCachePolicy"/>).</summary>
    public static RouteHandlerBuilder CachedUntilJobChanges(this RouteHandlerBuilder route, bool answersJobObject = false)
    {
        route.CacheOutput(JobResponseCachePolicy.Name);
        if (answersJobObject) route.WithMetadata(new JobObjectRoute());
        return route;
    }
}
