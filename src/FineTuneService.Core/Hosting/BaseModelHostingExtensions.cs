using FineTuneService.Core.Models;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Core.Hosting;

public static class BaseModelHostingExtensions
{
    /// <summary>
    /// Registers <see cref="BaseModelRegistry"/> and, when <c>Models:Directory</c> is set, imports its model folders at
    /// start (after migrations). Needs the database and the artifact store.
    /// </summary>
    public static IHostApplicationBuilder AddBaseModelRegistry(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<ModelsOptions>().BindConfiguration(ModelsOptions.Section);
        builder.Services.AddSingleton<BaseModelRegistry>();
        builder.Services.AddHostedService<BaseModelImporter>();
        return builder;
    }

    private sealed class BaseModelImporter(BaseModelRegistry registry, IOptions<ModelsOptions> options, IHostEnvironment environment,
        ILogger<BaseModelImporter> logger) : IHostedService
    {
        public async Task StartAsync(CancellationToken cancellationToken)
        {
            if (string.IsNullOrWhiteSpace(options.Value.Directory)) return;
            var directory = Path.GetFullPath(options.Value.Directory, environment.ContentRootPath);
            if (!Directory.Exists(directory))
            {
                logger.LogWarning("Models:Directory {Directory} does not exist; no base models imported", directory);
                return;
            }
            var imported = await registry.ImportDirectoryAsync(directory, cancellationToken);
            logger.LogInformation("Base models in {Directory}: {Count} imported or updated", directory, imported.Count);
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
