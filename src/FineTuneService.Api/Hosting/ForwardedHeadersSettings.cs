namespace FineTuneService.Api.Hosting;

/// <summary>Forwarded headers from a TLS-terminating proxy: section "ForwardedHeaders".</summary>
public sealed record ForwardedHeadersSettings
{
    public const string Section = "ForwardedHeaders";

    /// <summary>Apply <c>X-Forwarded-*</c> from the known proxies below.</summary>
    public bool Enabled { get; init; }

    /// <summary>Proxy addresses whose forwarded headers are trusted (the default, loopback only, is kept when empty).</summary>
    public string[] KnownProxies { get; init; } = [];

    /// <summary>Proxy networks in CIDR notation whose forwarded headers are trusted (e.g. the ingress subnet).</summary>
    public string[] KnownNetworks { get; init; } = [];

    /// <summary>How many proxies deep to read <c>X-Forwarded-For</c>.</summary>
    public int? ForwardLimit { get; init; } = 1;
}
