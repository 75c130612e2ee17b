using System.ComponentModel.DataAnnotations;

namespace FineTuneService.Worker.Inference;

/// <summary>The worker's inference server, bound from the <c>Inference</c> configuration section.</summary>
public sealed record InferenceOptions
{
    public const string SectionName = "Inference";

    /// <summary>Serve chat completions from this worker host (registers an endpoint the API forwards to).</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>Kestrel address of the server; port 0 picks a free port (the registered URL carries the real one).</summary>
    [Required]
    public string Listen { get; init; } = "http://127.0.0.1:0";

    /// <summary>The URL the API should use when it differs from the bound one (containers, NAT): <c>http://worker-1:8090</c>.</summary>
    public string? AdvertisedUrl { get; init; }

    /// <summary>
    /// Torch devices models are loaded on (<c>cpu</c>, <c>cuda:N</c>); empty means <c>["cpu"]</c>. A device may also be
    /// in <c>Worker:Devices</c>: training and inference then share it, and the budget below is what inference may hold.
    /// </summary>
    /// <remarks>Empty by default rather than ["cpu"]: configuration binding appends to a default array.</remarks>
    public string[] Devices { get; set; } = [];

    /// <summary>Most models kept loaded per device; the least recently used idle one is unloaded first.</summary>
    [Range(1, 64)]
    public int MaxLoadedModels { get; init; } = 4;

    /// <summary>Weights (MiB) the loaded models of one device may take together.</summary>
    [Range(1, 1 << 24)]
    public long MemoryBudgetMiB { get; init; } = 8192;

    /// <summary>Sequences decoded together per loaded model (continuous batching); more wait for a free row.</summary>
    [Range(1, 1024)]
    public int MaxBatchSize { get; init; } = 32;

    /// <summary>How often the endpoint row is refreshed (load, loaded models).</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>An OpenAI-compatible server that has the exported models (vLLM, TGI, llama.cpp): chats go there instead of the local engine.</summary>
    public UpstreamOptions Upstream { get; init; } = new();
}

/// <summary><c>Inference:Upstream</c>: where chat requests are forwarded when set.</summary>
public sealed record UpstreamOptions
{
    /// <summary>Base address including the API root, e.g. <c>http://vllm:8000/v1</c>; unset = serve with the local engine.</summary>
    public Uri? BaseAddress { get; init; }

    /// <summary>Bearer key of the upstream server (vLLM's <c>--api-key</c>); any value when it needs none.</summary>
    public string ApiKey { get; init; } = "none";

    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(5);
}
