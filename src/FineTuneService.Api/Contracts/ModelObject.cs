using FineTuneService.Core.Models;

namespace FineTuneService.Api.Contracts;

/// <summary>OpenAI "model" object.</summary>
public sealed record ModelObject(string Id, long Created, string OwnedBy)
{
    public string Object => "model";

    internal static ModelObject From(UsableModel model) => new(model.Id, UnixTime.Seconds(model.CreatedAt), model.OwnedBy);
}
