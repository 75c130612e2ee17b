using System.Diagnostics;
using System.Net;
using FineTuneService.Api.Errors;
using FineTuneService.Core.Domain;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Forwarder;

namespace FineTuneService.Api.Inference;

/// <summary>
/// Forwards a chat completion to a live inference endpoint with YARP's <see cref="IHttpForwarder"/>: the request
/// body as received, the answer (JSON or server-sent events) streamed back as it is produced, nothing buffered. The
/// tenant key stays here; the endpoint gets its own secret and the tenant id. An endpoint that cannot be reached
/// before it answered is passed over for the next candidate.
/// </summary>
public sealed class InferenceForwarder(IHttpForwarder forwarder, InferenceEndpointDirectory endpoints, IOptions<InferenceRoutingOptions> options,
    ILogger<InferenceForwarder> logger) : IDisposable
{
    public const string TenantHeader = "X-FTS-Tenant";
    private const int MaxAttempts = 3;

    private readonly HttpMessageInvoker _client = new(new SocketsHttpHandler
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
        UseCookies = false,
        EnableMultipleHttp2Connections = true,
        ActivityHeadersPropagator = new ReverseProxyPropagator(DistributedContextPropagator.Current),
        ConnectTimeout = TimeSpan.FromSeconds(5),
    });

    /// <summary>Sends the buffered request body (the API has read and checked it) to the best candidate, then the next on failure.</summary>
    public async Task ForwardAsync(HttpContext http, string tenantId, string weightsKey, CancellationToken cancellationToken)
    {
        var config = new ForwarderRequestConfig { ActivityTimeout = options.Value.ActivityTimeout };
        foreach (var endpoint in (await endpoints.CandidatesAsync(weightsKey, cancellationToken)).Take(MaxAttempts))
        {
            http.Request.Body.Position = 0;
            var error = await forwarder.SendAsync(http, endpoint.Url, _client, config, new EndpointTransformer(endpoint, tenantId), cancellationToken);
            if (error == ForwarderError.None) return;
            var failure = http.Features.Get<IForwarderErrorFeature>()?.Exception;
            if (http.Response.HasStarted)
            {
                logger.LogWarning(failure, "Forwarding to inference endpoint {Endpoint} broke off mid-answer: {Error}", endpoint.Id, error);
                return;
            }
            logger.LogWarning(failure, "Inference endpoint {Endpoint} at {Url} failed: {Error}; trying another", endpoint.Id, endpoint.Url, error);
            endpoints.MarkFailed(endpoint);
            http.Features.Set<IForwarderErrorFeature>(null);
            http.Response.Clear();
        }
        throw new ApiException(StatusCodes.Status503ServiceUnavailable,
            "No inference server is available right now (no worker host has registered a live endpoint); try again shortly.",
            "server_error", null, "inference_unavailable");
    }

    public void Dispose() => _client.Dispose();

    /// <summary>Replaces the caller's credentials with the endpoint's secret and names the tenant.</summary>
    private sealed class EndpointTransformer(InferenceEndpoint endpoint, string tenantId) : HttpTransformer
    {
        public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix,
            CancellationToken cancellationToken)
        {
            await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
            proxyRequest.Headers.Remove(TenantHeader);
            proxyRequest.Headers.TryAddWithoutValidation(TenantHeader, tenantId);
            proxyRequest.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", endpoint.AccessToken);
        }
    }
}
