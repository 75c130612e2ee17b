namespace FineTuneService.Api.Contracts;

/// <summary>OpenAI "model" object.</summary>
public sealed record ModelObject(string Id, long Created, string OwnedBy)
{
    public string Object => "model";
}
