using FineTuneService.Contracts.Safety;
using FineTuneService.Core.Domain;
using FineTuneService.Core.Safety;

namespace FineTuneService.Service.Tests.Safety;

/// <summary>The one stage plan the worker scores by and the estimate counts.</summary>
public sealed class SafetyStagePlanTests
{
    [Fact]
    public void A_plain_job_is_scored_at_its_base_and_after_training()
    {
        var plan = SafetyStagePlan.For(SafetyPlan.None, continuesTraining: false);

        Assert.Equal([SafetyStages.Base, SafetyStages.AfterTraining], plan.Stages);
        Assert.Equal([SafetyStages.AfterTraining], plan.TrainedStages);
        Assert.False(plan.ScoresRootBase);
    }

    [Fact]
    public void After_training_strategies_add_a_stage_each_in_run_order_and_continued_training_scores_the_root_first()
    {
        // Requested merge first: they still run (and are scored) in registry order, antidote before merge.
        var safety = SafetyPlan.Of(new MergeParams(), new FrozenLayersParams(), new AntidoteParams());

        var plan = SafetyStagePlan.For(safety, continuesTraining: true);

        Assert.Equal([SafetyStages.RootBase, SafetyStages.Base, SafetyStages.AfterTraining, SafetyStages.After("antidote"), SafetyStages.After("merge")],
            plan.Stages);
        Assert.Equal([SafetyStages.AfterTraining, SafetyStages.After("antidote"), SafetyStages.After("merge")], plan.TrainedStages);
        Assert.True(plan.ScoresRootBase);
    }
}
