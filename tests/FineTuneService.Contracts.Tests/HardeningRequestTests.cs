using System.Text.Json;
using FineTuneService.Contracts.Safety.Hardening;

namespace FineTuneService.Contracts.Tests;

public sealed class HardeningRequestTests
{
    private static HardeningRequest Parse(string? method, string? parameters = null, string? suffix = null) =>
        HardeningRequest.Parse("safetune-tiny", method, parameters is null ? null : JsonDocument.Parse(parameters).RootElement, suffix);

    [Fact]
    public void Booster_defaults_are_the_papers_and_the_suffix_defaults_to_the_method()
    {
        var request = Parse("booster");
        var booster = Assert.IsType<BoosterParams>(request.Params);
        Assert.Equal((5.0, 0.1), (booster.Lambda, booster.Alpha));
        Assert.Equal(BoosterParams.BaseAnswers, booster.AlignmentAnswers);
        Assert.Equal(BoosterParams.DefaultBenignShare, booster.BenignShare);
        Assert.Equal(BoosterParams.DefaultBenignShare, request.Method.ToJson(booster)["benign_share"]!.GetValue<double>());
        Assert.Equal(request.Method.Fields.Select(f => f.Name), request.Method.ToJson(booster).Select(p => p.Key)); // the echo binds again
        Assert.Equal("safetune-tiny-booster", request.HardenedModel);
        Assert.Equal(5.0, request.Method.ToJson(booster)["lambda"]!.GetValue<double>());
    }

    [Fact]
    public void Given_params_override_the_defaults()
    {
        var booster = Assert.IsType<BoosterParams>(Parse("booster", """{"lambda": 1, "steps": 7}""", "b2").Params);
        Assert.Equal((1.0, 0.1, 7), (booster.Lambda, booster.Alpha, booster.Steps));
    }

    [Theory]
    [InlineData(null, null, null, "method")]
    [InlineData("vaccine", null, null, "method")]
    [InlineData("booster", """{"alpha": 0}""", null, "params.alpha")]
    [InlineData("booster", """{"steps": 0}""", null, "params.steps")]
    [InlineData("booster", """{"lambda": "five"}""", null, "params.lambda")]
    [InlineData("booster", """{"rho": 1}""", null, "params.rho")]
    [InlineData("booster", """{"alignment_answers": "own"}""", null, "params.alignment_answers")]
    [InlineData("booster", """{"alignment_answers": 1}""", null, "params.alignment_answers")]
    [InlineData("booster", """{"benign_share": -0.1}""", null, "params.benign_share")]
    [InlineData("booster", """{"benign_share": 1}""", null, "params.benign_share")]
    [InlineData("booster", """{"benign_share": 0.5, "batch_size": 1}""", null, "params.benign_share")]
    [InlineData("booster", """{"batch_size": 1}""", null, "params.benign_share")]
    [InlineData("booster", "[1]", null, "params")]
    [InlineData("booster", null, "Has Space", "suffix")]
    [InlineData("booster", null, "", "suffix")]
    [InlineData("booster", null, "-leading", "suffix")]
    public void Bad_requests_name_the_offending_param(string? method, string? parameters, string? suffix, string param)
    {
        var violation = Assert.Throws<ContractViolation>(() => Parse(method, parameters, suffix));
        Assert.Equal(param, violation.Param);
    }

    [Theory]
    [InlineData("""{"benign_share": 0}""", 0.0, 0)]
    [InlineData("""{"benign_share": 0.25}""", 0.25, 2)]
    [InlineData("""{"benign_share": 0.3, "batch_size": 4}""", 0.3, 1)]
    [InlineData("""{"benign_share": 0.05}""", 0.05, 1)]
    [InlineData("""{"benign_share": 0.95}""", 0.95, 7)]
    [InlineData("""{"batch_size": 2}""", BoosterParams.DefaultBenignShare, 1)]
    [InlineData("""{"benign_share": 0, "batch_size": 1}""", 0.0, 0)]
    public void A_benign_share_is_accepted_and_leaves_both_kinds_in_a_batch(string parameters, double share, int benignPerBatch)
    {
        var booster = Assert.IsType<BoosterParams>(Parse("booster", parameters).Params);
        Assert.Equal((share, benignPerBatch), (booster.BenignShare, booster.BenignPairsPerBatch));
    }

    [Fact]
    public void A_benign_share_with_batch_size_1_says_how_to_fix_it()
    {
        var violation = Assert.Throws<ContractViolation>(() => Parse("booster", """{"batch_size": 1}"""));
        Assert.Contains("batch_size 2 or more", violation.Message);
        Assert.Contains("set benign_share to 0", violation.Message);
    }

    [Fact]
    public void Every_registered_method_has_a_description_and_binds_its_defaults()
    {
        Assert.All(HardeningMethods.Registry.All, m =>
        {
            Assert.NotEmpty(m.Description);
            Assert.IsType(m.ParamsType, m.Bind(null));
            Assert.All(m.Fields, f => Assert.NotEmpty(f.Description));
        });
    }
}
