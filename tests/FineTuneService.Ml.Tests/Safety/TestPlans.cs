using System.Text.Json.Nodes;
using FineTuneService.Contracts.Safety;
using FineTuneService.Ml.Safety.Strategies;
using FineTuneService.Ml.Training;

namespace FineTuneService.Ml.Tests.Safety;

/// <summary>Trainer hooks of a safety request written as the API receives it.</summary>
internal static class TestPlans
{
    public static SafetyPlan Plan(string json) => SafetyPlan.FromRequest(JsonNode.Parse(json)!.AsObject());

    public static IReadOnlyList<ITrainingStrategy> Strategies(string json, EncodedSafetyData data) => SafetyTrainingStrategies.Create(Plan(json), data);
}
