using System.Text.Json.Nodes;

namespace FineTuneService.Ml.Models;

/// <summary>Hugging Face configs store token ids such as eos_token_id as one number or a list.</summary>
internal static class TokenIdList
{
    public static IReadOnlyList<int> Read(JsonNode? node) => node switch
    {
        null => [],
        JsonArray array => array.Select(n => n!.GetValue<int>()).ToArray(),
        var single => [single.GetValue<int>()],
    };
}
