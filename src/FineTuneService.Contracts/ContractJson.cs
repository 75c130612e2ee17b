using System.Text.Json;
using System.Text.Json.Serialization;

namespace FineTuneService.Contracts;

/// <summary>How contract records read and write JSON: OpenAI's snake_case, and no field that the record does not have.</summary>
public static class ContractJson
{
    public static JsonSerializerOptions Options { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    /// <summary>The wire name of a record member, e.g. "dense_ratio" for <c>DenseRatio</c>.</summary>
    public static string Name(string member) => Options.PropertyNamingPolicy!.ConvertName(member);
}
