using System.Text.Json.Nodes;
using FineTuneService.Contracts.Safety;
using FineTuneService.Contracts.Jobs;

namespace FineTuneService.Contracts.Tests;

public sealed class JobMethodTests
{
    private static JobMethod Parse(string? method, string? hyperparameters = null) => JobMethod.FromRequest(
        method is null ? null : JsonNode.Parse(method)!.AsObject(), hyperparameters is null ? null : JsonNode.Parse(hyperparameters)!.AsObject());

    [Theory]
    [InlineData(10, 10, 1, 0.05)]      // small sets get more epochs, so about 100 examples are seen
    [InlineData(50, 3, 1, 0.05)]
    [InlineData(5_000, 3, 8, 0.1)]     // batch of about 0.2% of the data, rounded down to a power of two
    [InlineData(20_000, 1, 32, 0.2)]   // large sets: fewer epochs, bigger batches, larger multiplier
    public void Auto_values_follow_the_dataset_size(int examples, int epochs, int batchSize, double multiplier) =>
        Assert.Equal(new ResolvedHyperparameters(epochs, batchSize, multiplier), ResolvedHyperparameters.Resolve(Hyperparameters.Auto, examples));

    [Fact]
    public void Explicit_values_are_kept_and_missing_ones_mean_auto()
    {
        var requested = Parse(null, """{"n_epochs": 2, "learning_rate_multiplier": 0.5, "batch_size": "auto"}""").Hyperparameters;
        Assert.Equal("""{"n_epochs":2,"batch_size":"auto","learning_rate_multiplier":0.5}""", requested.ToJson().ToJsonString());
        var resolved = ResolvedHyperparameters.Resolve(requested, 100);
        Assert.Equal(new ResolvedHyperparameters(2, 1, 0.5), resolved);
        Assert.Equal("""{"n_epochs":2,"batch_size":1,"learning_rate_multiplier":0.5}""", resolved.AsRequested().ToJson().ToJsonString());
    }

    [Theory]
    [InlineData(null, """{"n_epochs": "many"}""", "hyperparameters.n_epochs", "must be a number or \"auto\"")]
    [InlineData(null, """{"batch_size": 0}""", "hyperparameters.batch_size", "between 1 and 256")]
    [InlineData(null, """{"n_epochs": 2.5}""", "hyperparameters.n_epochs", "must be an integer")]
    [InlineData(null, """{"epochs": 2}""", "hyperparameters.epochs", "Unknown hyperparameter")]
    [InlineData("""{"type": "reinforcement"}""", null, "method.type", "Only method.type 'supervised', 'dpo'")]
    [InlineData("""{"type": "dpo", "dpo": {"hyperparameters": {"beta": 0}}}""", null, "method.dpo.hyperparameters.beta", "between 0.001 and 10")]
    [InlineData("""{"type": "dpo", "dpo": {"hyperparameters": {"beta": "strong"}}}""", null, "method.dpo.hyperparameters.beta", "must be a number or \"auto\"")]
    [InlineData("""{"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 0}}}""", null, "method.dpo.hyperparameters.n_epochs", "between 1 and 50")]
    [InlineData("""{"type": "dpo", "dpo": {"adapter": {"rank": 0}}}""", null, "method.dpo.adapter.rank", "between 1 and 256")]
    [InlineData("""{"type": "supervised", "supervised": {"hyperparameters": {"beta": 0.1}}}""", null, "method.supervised.hyperparameters.beta", "Unknown hyperparameter")]
    [InlineData("""{"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}}""", """{"n_epochs": 1}""", "hyperparameters", "not both")]
    [InlineData("""{"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}}""", null, "method.supervised.hyperparameters.n_epochs", "between 1 and 50")]
    [InlineData("""{"type": "supervised", "supervised": {"adapter": {"rank": 0}}}""", null, "method.supervised.adapter.rank", "between 1 and 256")]
    [InlineData("""{"type": "supervised", "supervised": {"adapter": {"target_modules": ["lm_head"]}}}""", null, "method.supervised.adapter.target_modules", "q_proj, k_proj")]
    [InlineData("""{"type": "supervised", "supervised": {"adapter": {"type": "ia3"}}}""", null, "method.supervised.adapter.type", "'lora' or 'full'")]
    [InlineData("""{"type": "supervised", "supervised": {"adapter": {"scaling": 2}}}""", null, "method.supervised.adapter.scaling", "Unknown adapter setting")]
    public void Malformed_methods_name_the_param_at_fault(string? method, string? hyperparameters, string param, string expected)
    {
        var error = Assert.Throws<ContractViolation>(() => Parse(method, hyperparameters));
        Assert.Equal(param, error.Param);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void A_dpo_method_reads_beta_beside_the_shared_hyperparameters_and_echoes_it_resolved_once_training_starts()
    {
        var method = Parse("""{"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.25, "n_epochs": 2}, "adapter": {"rank": 2}}}""");
        Assert.True(method.IsPreference);
        Assert.Equal(0.25, method.Dpo!.ResolvedBeta);
        Assert.Equal(2, method.Hyperparameters.Epochs);
        Assert.Equal(2, method.Adapter!.Rank);
        Assert.Equal(method, JobMethod.FromStored(method.ToJsonString()));

        var auto = Parse("""{"type": "dpo", "dpo": {"hyperparameters": {"beta": "auto"}}}""");
        Assert.Equal("""{"type":"dpo","dpo":{"hyperparameters":{"n_epochs":"auto","batch_size":"auto","learning_rate_multiplier":"auto","beta":"auto"}}}""", auto.ToJsonString());
        var resolved = auto.WithHyperparameters(ResolvedHyperparameters.Resolve(auto.Hyperparameters, 40).AsRequested());
        Assert.Equal(DpoMethod.DefaultBeta, resolved.ToJson()["dpo"]!["hyperparameters"]!["beta"]!.GetValue<double>());
        Assert.False(Parse(null).IsPreference);
    }

    [Fact]
    public void A_lora_adapter_gets_its_defaults_and_full_means_no_adapter()
    {
        var method = Parse("""{"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}, "adapter": {"type": "lora", "rank": 4}}}""");
        Assert.Equal(new LoraSettings { Rank = 4, Alpha = 8, Dropout = 0.05, TargetModules = ["q_proj", "v_proj"] }, method.Adapter);
        Assert.Equal(
            """{"type":"supervised","supervised":{"hyperparameters":{"n_epochs":2,"batch_size":"auto","learning_rate_multiplier":"auto"},"adapter":{"type":"lora","rank":4,"alpha":8,"dropout":0.05,"target_modules":["q_proj","v_proj"]}}}""",
            method.ToJson().ToJsonString());
        Assert.Null(Parse("""{"type": "supervised", "supervised": {"adapter": {"type": "full"}}}""").Adapter);
        Assert.Equal([DecoderProjections.AllLinear], Parse("""{"type": "supervised", "supervised": {"adapter": {"target_modules": "all-linear"}}}""").Adapter!.TargetModules);
    }

    [Fact]
    public void The_worker_resolves_into_the_same_method()
    {
        var method = Parse("""{"type": "supervised", "supervised": {"adapter": {"rank": 2}}}""");
        var resolved = method.WithHyperparameters(ResolvedHyperparameters.Resolve(method.Hyperparameters, 24).AsRequested());
        Assert.Equal(method.Adapter, resolved.Adapter);
        Assert.Equal(new Hyperparameters { Epochs = 5, BatchSize = 1, LearningRateMultiplier = 0.05 }, resolved.Hyperparameters);
    }
}

public sealed class SafetyEvaluationSettingsTests
{
    [Fact]
    public void Settings_are_bounded_and_completed_for_the_prompt_set()
    {
        var settings = SafetyEvaluationSettings.FromRequest(["harmful_score", "over_refusal", "harmful_score"], 5, null, 0, maxPromptsLimit: 50);
        Assert.Equal(["harmful_score", "over_refusal"], settings.Include);
        Assert.Equal((32, 0), (settings.MaxNewTokens, settings.SamplesPerPart));
        var forFile = settings.ForPrompts(filePrompts: 3, "tenant:t");
        Assert.Equal((5, 3), (forFile.MaxPrompts!.Value, forFile.PromptCount!.Value));
        Assert.Equal(SafetyEvaluationSettings.DefaultShippedPrompts, SafetyEvaluationSettings.FromRequest(null, null, null, null, 50).ForPrompts(null, "admin").MaxPrompts);
        Assert.Equal(forFile, SafetyEvaluationSettings.FromStored(forFile.ToJsonString()));
        Assert.Equal(
            """{"include":["harmful_score","over_refusal"],"max_prompts":5,"max_new_tokens":32,"samples_per_part":0,"prompt_count":3,"requested_by":"tenant:t"}""",
            forFile.ToJsonString());
    }

    [Theory]
    [InlineData(new[] { "accuracy" }, null, null, "include")]
    [InlineData(new[] { "over_refusal" }, null, null, "include")]
    [InlineData(null, 51, null, "max_prompts")]
    [InlineData(null, null, 513, "max_new_tokens")]
    public void Out_of_bounds_settings_name_their_param(string[]? include, int? maxPrompts, int? maxNewTokens, string param) =>
        Assert.Equal(param, Assert.Throws<ContractViolation>(() => SafetyEvaluationSettings.FromRequest(include, maxPrompts, maxNewTokens, null, 50)).Param);
}

public sealed class StoredJobMethodTests
{
    [Fact]
    public void A_stored_method_reads_back_as_written_and_a_part_that_no_longer_passes_reads_as_its_default()
    {
        var method = JobMethod.FromRequest(JsonNode.Parse("""{"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 4}, "adapter": {"rank": 2}}}""")!.AsObject(), null);
        Assert.Equal(method, JobMethod.FromStored(method.ToJsonString()));
        var stale = JobMethod.FromStored("""{"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 500}, "adapter": {"rank": 2}}}""");
        Assert.Equal(Hyperparameters.Auto, stale.Hyperparameters);
        Assert.Equal(2, stale.Adapter!.Rank);
        Assert.Equal(Hyperparameters.Auto, Hyperparameters.FromStored("{}"));
    }
}
