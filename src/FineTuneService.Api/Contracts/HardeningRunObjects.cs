using System.Text.Json;
using System.Text.Json.Nodes;
using FineTuneService.Core.Domain;

namespace FineTuneService.Api.Contracts;

/// <summary>Body of <c>POST /v1/admin/models/{base}/harden</c>.</summary>
public sealed record HardenModelRequest
{
    /// <summary>A registered hardening method: "booster".</summary>
    public string? Method { get; init; }

    /// <summary>The method's parameters; omitted fields keep their defaults (documented per method from the hardening registry).</summary>
    public JsonElement? Params { get; init; }

    /// <summary>The new model is named {base}-{suffix}; default the method's name (e.g. safetune-tiny-booster).</summary>
    public string? Suffix { get; init; }
}

/// <summary>
/// A hardening run ("hardening_run"): the base model, method and parameters, the model it produces, its status
/// (queued, running, succeeded, failed) and, once succeeded, its report (losses, artifact, the new model's base scores).
/// </summary>
public sealed record HardeningRunObject(
    string Id, long CreatedAt, string BaseModel, string Method, JsonObject Params, string Suffix, string HardenedModel,
    string Status, JsonObject? Report, JsonObject? Error, long? StartedAt, long? FinishedAt)
{
    public string Object => "hardening_run";

    internal static HardeningRunObject From(HardeningRun r) => new(
        r.Id, UnixTime.Seconds(r.CreatedAt), r.BaseModel, r.Method, r.Params.DeepClone().AsObject(), r.Suffix, r.HardenedModel,
        r.Status.ToString().ToLowerInvariant(), r.Report?.DeepClone().AsObject(), r.Error?.DeepClone().AsObject(),
        UnixTime.Seconds(r.StartedAt), UnixTime.Seconds(r.FinishedAt));
}

/// <summary>A hardening run's progress event ("hardening_run.event"); a step's event carries its losses in <c>data</c>.</summary>
public sealed record HardeningRunEventObject(string Id, long CreatedAt, string Level, string Message, JsonObject? Data)
{
    public string Object => "hardening_run.event";

    internal static HardeningRunEventObject From(HardeningRunEvent e) => new(
        e.Id, UnixTime.Seconds(e.CreatedAt), e.Level.ToString().ToLowerInvariant(), e.Message, e.Data?.DeepClone().AsObject());
}
