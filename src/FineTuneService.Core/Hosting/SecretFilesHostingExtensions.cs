using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;

namespace FineTuneService.Core.Hosting;

public static class SecretFilesHostingExtensions
{
    /// <summary>The directory container runtimes mount secrets into (compose <c>secrets:</c>, Kubernetes, swarm).</summary>
    public const string DefaultDirectory = "/run/secrets";

    /// <summary>
    /// Key-per-file configuration from <c>Secrets:Directory</c> (default <see cref="DefaultDirectory"/>), over every
    /// other source: a file named <c>ConnectionStrings__Postgres</c> is the setting <c>ConnectionStrings:Postgres</c>,
    /// <c>Auth__AdminKey</c> the admin key. Passwords and keys then never sit in environment variables.
    /// </summary>
    public static IHostApplicationBuilder AddSecretFiles(this IHostApplicationBuilder builder)
    {
        var directory = builder.Configuration["Secrets:Directory"] ?? DefaultDirectory;
        builder.Configuration.AddKeyPerFile(Path.GetFullPath(directory), optional: true);
        return builder;
    }
}
